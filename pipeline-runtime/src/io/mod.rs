//! Sources and sinks: JSON lines and CSV files (serde), stdin/stdout, Redis Streams, Kafka (feature
//! `kafka`), and in-memory iterators and collectors for tests and for embedding a pipeline in an
//! application.
//!
//! File sinks write to a temporary file beside the target and rename it into place only when the
//! whole run ends well, so a failed run never leaves a half-written output behind; rolling file
//! sinks (`JsonLines::rolling`, `Csv::rolling`), for runs that do not end, rename a part into
//! place at each checkpoint. A source that
//! must acknowledge what it read (a Redis stream's or a Kafka topic's consumer group) does so at
//! checkpoints, once what it read before them has reached every sink durably (see `checkpoint`).

mod csv;
mod file;
mod jsonl;
#[cfg(feature = "kafka")]
mod kafka;
mod lines;
mod memory;
mod outage;
mod percent;
mod redis;
mod rolling;

use std::path::Path;

pub use self::csv::{Csv, CsvReader, CsvWriter};
pub(crate) use self::file::RELATIVE;
pub use self::file::{remove_partial_outputs, Commit, LinesBefore};
pub use self::jsonl::{JsonLines, JsonLinesReader, JsonLinesWriter};
#[cfg(feature = "kafka")]
pub use self::kafka::{Kafka, KafkaReader, KafkaWriter, DEFAULT_MAX_MESSAGE_BYTES};
pub use self::lines::DEFAULT_MAX_LINE_BYTES;
pub use self::memory::{Collector, Memory, MemorySource};
pub use self::redis::{
    RedisStream, RedisStreamReader, RedisStreamWriter, DEFAULT_DEDUPLICATE_FOR,
    DEFAULT_MAX_ENTRY_BYTES, DEFAULT_RETRY_FOR,
};
pub use self::rolling::{CsvPart, JsonPart, PartFormat, RollingWriter};

/// Where an element came from: the source stage and its 1-based record number there (the line
/// number for line-based files; a stream source may use a position that survives a restart,
/// such as its entry id). It travels with the element so that a failure anywhere downstream can
/// point at the raw record, and a sink can tell an element read again after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Pos {
    pub source: u32,
    pub index: u64,
}

/// A record a source could not turn into an element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRecord {
    pub error: String,
    /// The raw record, as text (lossy for invalid UTF-8), cut to [`MAX_RAW_BYTES`].
    pub raw: Option<String>,
}

/// How much of a bad record's raw text a dead letter keeps.
pub const MAX_RAW_BYTES: usize = 64 * 1024;

pub(crate) fn raw_text(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_RAW_BYTES)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > MAX_RAW_BYTES {
        text.push_str(&format!("... ({} bytes in all)", bytes.len()));
    }
    text
}

/// A worker's share of a run split across workers (`--workers`, `--processes`): worker `index`
/// of `peers`, counted over every process. A run on one worker has the whole input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    pub index: usize,
    pub peers: usize,
}

impl Share {
    /// The whole input: one worker.
    pub const WHOLE: Share = Share { index: 0, peers: 1 };

    pub fn is_whole(self) -> bool {
        self.peers == 1
    }

    /// The path of this worker's part of a file output, Beam's way: `out.jsonl` becomes
    /// `out-00001-of-00004.jsonl` (the whole path when the run is not split).
    pub fn part_path(self, path: &Path) -> std::path::PathBuf {
        if self.is_whole() {
            return path.to_owned();
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default();
        let mut name = format!("{stem}-{:05}-of-{:05}", self.index, self.peers);
        if let Some(ext) = path.extension() {
            name.push('.');
            name.push_str(&ext.to_string_lossy());
        }
        path.with_file_name(name)
    }
}

/// One record read by a source, with its 1-based position.
pub enum Record<T> {
    Good(u64, T),
    Bad(u64, BadRecord),
}

/// Where a pipeline's elements come from: `read(source)`.
#[diagnostic::on_unimplemented(
    message = "`read` takes a source, but `{Self}` is not one",
    label = "not a source",
    note = "sources: `JsonLines::<T>::open(path)`, `JsonLines::<T>::stdin()`, `Csv::<T>::open(path)`, `RedisStream::<T>::read(url)`, `Memory::new(iterable)`, or your own `impl tandem::io::Source`"
)]
pub trait Source: Send {
    type Item: Send;

    /// What the summary and errors call it (`JSON lines file requests.jsonl`).
    fn describe(&self) -> String;

    /// Points a file source at another path (`--input`). `false` if it has no path.
    fn set_path(&mut self, _path: &Path) -> bool {
        false
    }

    /// Opens the input; called before any segment runs.
    fn open(&mut self) -> crate::Result<()> {
        Ok(())
    }

    /// When the run is split across workers, makes this source read only `share` of its input
    /// (called before `open`): a file its byte range cut at line boundaries, a stream's consumer
    /// group one member per worker, memory every `peers`-th item. `false` if it cannot be split:
    /// then worker 0 reads all of it and the other workers nothing.
    fn split(&mut self, share: Share) -> bool {
        let _ = share;
        false
    }

    /// Reads up to `max` records, handing each to `emit`. `Ok(false)` once the input is done.
    /// An `Err` is an input that cannot be read any further (not a bad record).
    fn read_chunk<E: FnMut(Record<Self::Item>)>(
        &mut self,
        max: usize,
        emit: E,
    ) -> crate::Result<bool>;

    /// A file source reading its part of a file split across workers: the lines before the part.
    /// Its positions are then line numbers counted from the part's start, flagged relative; the
    /// run makes them the file's when one is told (a dead letter, a sink keyed by positions), so
    /// that the lines before the part are counted only then, not before reading.
    #[doc(hidden)]
    fn lines_before(&self) -> Option<std::sync::Arc<LinesBefore>> {
        None
    }

    /// At a checkpoint barrier, and once more when the source has ended: what acknowledges every
    /// record read since the last call (a stream's `XACK`, a consumer group's offset commit).
    /// The run commits it only once everything read before the barrier has reached every sink
    /// durably, and never if the run fails, so that a restart reads it again. Files and memory
    /// have nothing to acknowledge.
    fn checkpoint(&mut self) -> crate::Result<Option<Box<dyn Commit>>> {
        Ok(None)
    }

    /// Whether this source acknowledges its input at checkpoints (implements `checkpoint`). A run
    /// none of whose sources does has no use for checkpoints and sends no barriers: a merge of
    /// two files is not held back to the pace of its slower input at every barrier.
    fn acknowledges(&self) -> bool {
        false
    }
}

/// Where a chain ends: `write(sink)`.
#[diagnostic::on_unimplemented(
    message = "`write` receives `{T}`, but `{Self}` cannot write `{T}`",
    label = "this sink cannot write `{T}`",
    note = "file sinks (`JsonLines::create`, `Csv::create`) write any `T: serde::Serialize`; `Collector<T>` collects exactly `T`"
)]
pub trait Sink<T>: Send {
    fn describe(&self) -> String;

    /// Points a file sink at another path (`--output`). `false` if it has no path.
    fn set_path(&mut self, _path: &Path) -> bool {
        false
    }

    /// Creates the output; called before any segment runs.
    fn open(&mut self) -> crate::Result<()> {
        Ok(())
    }

    /// When the run is split across workers, makes this sink write this worker's part (called
    /// before `open`): a file sink writes [`Share::part_path`], a rolling sink parts named after
    /// the worker. Sinks every worker may share (stdout, a collector, a stream) do nothing.
    fn split(&mut self, share: Share) {
        let _ = share;
    }

    /// Writes one element. An error sends that element to the dead letters.
    fn write(&mut self, item: T) -> Result<(), String>;

    /// Writes one element that came from `pos`: what the run calls. A sink that must not write
    /// an element twice when a restarted run reads its input again derives the element's id
    /// from `pos`; others need not implement it.
    fn write_at(&mut self, item: T, pos: Pos) -> Result<(), String> {
        let _ = pos;
        self.write(item)
    }

    /// Whether `write_at` looks at its `pos` (the default, for sinks that implement it). A sink
    /// that does not says so: in a run split across workers, a later worker's positions in a
    /// file are then not counted from the file's start for it (see `Source::lines_before`), and
    /// `write_at` gets them as they travel.
    fn uses_positions(&self) -> bool {
        true
    }

    /// Called when the sink's segment is about to wait for input: a sink that buffers writes (a
    /// Redis stream pipelines them) sends them on, so that nothing lingers in a live pipeline. An
    /// error fails the run at once: the sink can no longer write.
    fn flush(&mut self) -> crate::Result<()> {
        Ok(())
    }

    /// Flushes everything; returns what makes the output visible once the whole run succeeded.
    fn finish(&mut self) -> crate::Result<Option<Box<dyn Commit>>>;

    /// At a checkpoint barrier: makes everything written so far durable. `Ok(true)` if it did
    /// (a stream, a database); `Ok(false)` if this sink's output becomes durable only when the
    /// run ends (files, committed by rename): then no input is acknowledged before the end.
    fn checkpoint(&mut self) -> crate::Result<bool> {
        Ok(false)
    }
}
