//! A sink of ids that can be made to fail its commit, for the stream tests (`tests/kafka.rs`,
//! `tests/redis_streams.rs`). Included with `#[path = "common/ids.rs"] mod ids;`.

use tandem::io::{Collector, Commit, Sink};

/// Collects the ids it receives; with `fail`, its output cannot be committed, which fails the
/// run at its very end: after every record was read and handed on, and the source finished.
#[derive(Clone)]
pub struct Ids {
    pub collected: Collector<u64>,
    pub fail: bool,
}

impl Ids {
    pub fn new(fail: bool) -> Self {
        Self {
            collected: Collector::new(),
            fail,
        }
    }
}

impl Sink<u64> for Ids {
    fn describe(&self) -> String {
        "ids".into()
    }
    fn write(&mut self, id: u64) -> Result<(), String> {
        self.collected.write(id)
    }
    fn finish(&mut self) -> tandem::Result<Option<Box<dyn Commit>>> {
        if self.fail {
            return Ok(Some(Box::new(DiskFull)));
        }
        Sink::<u64>::finish(&mut self.collected)
    }
}

struct DiskFull;

impl Commit for DiskFull {
    fn commit(self: Box<Self>) -> tandem::Result<()> {
        Err(tandem::Error::Write {
            what: "ids".into(),
            message: "the disk is full".into(),
        })
    }
}
