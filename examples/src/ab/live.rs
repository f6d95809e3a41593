//! `ab_test --live`: the A/B test on requests read from a Redis stream, as Beam's multi-model page
//! describes it (`ReadFromStream`), with the report refreshed as each window closes.
//!
//! The requests come from a consumer group (`ab_traffic` fills the stream with simulated
//! requests); the CTR per arm per window goes out to a stream as each window closes, and the
//! report — totals, the always-valid test looked at after every window, the sample-ratio check —
//! is written again to a file after each window, atomically (a reader never sees half of it).
//! The requests are acknowledged at checkpoints, once the windows made from them are in the
//! output stream.

use std::path::PathBuf;
use std::sync::Mutex;

use tandem::io::{Commit, RedisStreamWriter, Sink};
use tandem::prelude::{Combined, CtrStats};

use super::pipeline::AbArgs;
use super::report::AbReport;

/// The live outputs of a window result: the output stream and the refreshed report.
pub struct LiveOutputs<'a> {
    pub stream: RedisStreamWriter,
    pub report: PathBuf,
    pub args: &'a AbArgs,
    /// Every window result so far (a few per window: the report is made from all of them).
    pub windows: Mutex<Vec<Combined<String, CtrStats>>>,
}

impl Sink<Combined<String, CtrStats>> for LiveOutputs<'_> {
    fn describe(&self) -> String {
        format!(
            "{} and the report {}",
            <RedisStreamWriter as Sink<Combined<String, CtrStats>>>::describe(&self.stream),
            self.report.display()
        )
    }

    fn open(&mut self) -> tandem::Result<()> {
        <RedisStreamWriter as Sink<Combined<String, CtrStats>>>::open(&mut self.stream)
    }

    fn write(&mut self, item: Combined<String, CtrStats>) -> Result<(), String> {
        self.write_at(
            item,
            tandem::io::Pos {
                source: 0,
                index: 0,
            },
        )
    }

    fn write_at(
        &mut self,
        item: Combined<String, CtrStats>,
        pos: tandem::io::Pos,
    ) -> Result<(), String> {
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(item.clone());
        self.stream.write_at(item, pos)?;
        self.refresh()
            .map_err(|e| format!("refreshing the report: {e}"))
    }

    fn flush(&mut self) -> tandem::Result<()> {
        <RedisStreamWriter as Sink<Combined<String, CtrStats>>>::flush(&mut self.stream)
    }

    fn checkpoint(&mut self) -> tandem::Result<bool> {
        <RedisStreamWriter as Sink<Combined<String, CtrStats>>>::checkpoint(&mut self.stream)
    }

    fn finish(&mut self) -> tandem::Result<Option<Box<dyn Commit>>> {
        <RedisStreamWriter as Sink<Combined<String, CtrStats>>>::finish(&mut self.stream)
    }
}

impl LiveOutputs<'_> {
    /// Writes the report of every window so far to a temporary file beside the report and
    /// renames it into place.
    fn refresh(&self) -> std::io::Result<()> {
        let windows = self
            .windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let report = AbReport::new(self.args, &windows);
        let dir = self
            .report
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut file, report.to_string().as_bytes())?;
        file.persist(&self.report).map_err(|e| e.error)?;
        Ok(())
    }
}

/// A sink that is there or not, by the command line: `Off` takes every element and keeps
/// nothing (and has nothing to make durable).
pub enum Maybe<S> {
    On(S),
    Off,
}

impl<T, S: Sink<T>> Sink<T> for Maybe<S> {
    fn describe(&self) -> String {
        match self {
            Self::On(s) => s.describe(),
            Self::Off => "nothing (not asked for)".into(),
        }
    }
    fn set_path(&mut self, path: &std::path::Path) -> bool {
        match self {
            Self::On(s) => s.set_path(path),
            Self::Off => false,
        }
    }
    fn open(&mut self) -> tandem::Result<()> {
        match self {
            Self::On(s) => s.open(),
            Self::Off => Ok(()),
        }
    }
    /// A split run: the wrapped sink writes this worker's part.
    fn split(&mut self, share: tandem::io::Share) {
        if let Self::On(s) = self {
            s.split(share)
        }
    }
    fn write(&mut self, item: T) -> Result<(), String> {
        match self {
            Self::On(s) => s.write(item),
            Self::Off => Ok(()),
        }
    }
    fn write_at(&mut self, item: T, pos: tandem::io::Pos) -> Result<(), String> {
        match self {
            Self::On(s) => s.write_at(item, pos),
            Self::Off => Ok(()),
        }
    }
    fn uses_positions(&self) -> bool {
        match self {
            Self::On(s) => s.uses_positions(),
            Self::Off => false,
        }
    }
    fn flush(&mut self) -> tandem::Result<()> {
        match self {
            Self::On(s) => s.flush(),
            Self::Off => Ok(()),
        }
    }
    fn checkpoint(&mut self) -> tandem::Result<bool> {
        match self {
            Self::On(s) => s.checkpoint(),
            Self::Off => Ok(true),
        }
    }
    fn finish(&mut self) -> tandem::Result<Option<Box<dyn Commit>>> {
        match self {
            Self::On(s) => s.finish(),
            Self::Off => Ok(None),
        }
    }
}

/// A sink whose output is not meant to outlive the process (the windows kept in memory for the
/// report at the end): nothing to make durable at a checkpoint.
pub struct InMemory<S>(pub S);

impl<T, S: Sink<T>> Sink<T> for InMemory<S> {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn open(&mut self) -> tandem::Result<()> {
        self.0.open()
    }
    fn write(&mut self, item: T) -> Result<(), String> {
        self.0.write(item)
    }
    fn uses_positions(&self) -> bool {
        false
    }
    fn checkpoint(&mut self) -> tandem::Result<bool> {
        Ok(true)
    }
    fn finish(&mut self) -> tandem::Result<Option<Box<dyn Commit>>> {
        self.0.finish()
    }
}
