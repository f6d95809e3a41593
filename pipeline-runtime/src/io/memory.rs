use std::sync::{Arc, Mutex};

use super::{Commit, Record, Share, Sink, Source};

/// In-memory sources: any iterator (a `Vec`, a range, a generator).
pub struct Memory;

impl Memory {
    /// Reads the items of `items` in order, numbered from 1.
    #[allow(clippy::new_ret_no_self)] // `Memory` only names the family, like `JsonLines`
    pub fn new<I>(items: I) -> MemorySource<I::IntoIter>
    where
        I: IntoIterator,
        I::IntoIter: Send,
        I::Item: Send,
    {
        MemorySource {
            items: items.into_iter(),
            index: 0,
            share: Share::WHOLE,
        }
    }
}

/// See [`Memory::new`].
pub struct MemorySource<I> {
    items: I,
    index: u64,
    share: Share,
}

impl<I> Source for MemorySource<I>
where
    I: Iterator + Send,
    I::Item: Send,
{
    type Item = I::Item;

    fn describe(&self) -> String {
        "in-memory items".into()
    }

    /// Worker `index` of `peers` reads items `index + 1`, `index + 1 + peers`, ... (numbered as
    /// in the whole sequence).
    fn split(&mut self, share: Share) -> bool {
        self.share = share;
        true
    }

    fn read_chunk<E: FnMut(Record<I::Item>)>(
        &mut self,
        max: usize,
        mut emit: E,
    ) -> crate::Result<bool> {
        let Share { index, peers } = self.share;
        for _ in 0..max {
            // The items before this worker's next one belong to the others.
            let skip = if self.index == 0 { index } else { peers - 1 };
            match self.items.nth(skip) {
                Some(item) => {
                    self.index += skip as u64 + 1;
                    emit(Record::Good(self.index, item));
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// A sink that collects elements in memory; clone it into the pipeline's args, read it after.
///
/// Elements become visible when the run ends well, like a file output.
pub struct Collector<T> {
    shared: Arc<Mutex<Vec<T>>>,
    pending: Vec<T>,
}

impl<T> Clone for Collector<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            pending: Vec::new(),
        }
    }
}

impl<T> Default for Collector<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Collector<T> {
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Mutex::new(Vec::new())),
            pending: Vec::new(),
        }
    }

    /// Takes what has been collected so far.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.shared.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl<T: Send + 'static> Sink<T> for Collector<T> {
    fn uses_positions(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        "in-memory collector".into()
    }

    fn write(&mut self, item: T) -> Result<(), String> {
        self.pending.push(item);
        Ok(())
    }

    fn finish(&mut self) -> crate::Result<Option<Box<dyn Commit>>> {
        Ok(Some(Box::new(CollectorCommit {
            shared: self.shared.clone(),
            items: std::mem::take(&mut self.pending),
        })))
    }
}

struct CollectorCommit<T> {
    shared: Arc<Mutex<Vec<T>>>,
    items: Vec<T>,
}

impl<T: Send> Commit for CollectorCommit<T> {
    fn commit(self: Box<Self>) -> crate::Result<()> {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(self.items);
        Ok(())
    }
}
