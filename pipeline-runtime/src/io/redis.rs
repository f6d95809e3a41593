//! Redis Streams: a source that reads a stream through a consumer group, and a sink that appends
//! to a stream. What they promise is documented on [`RedisStream`].

mod address;
mod entries;
mod reader;
mod retry;
mod writer;

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;

pub use self::reader::RedisStreamReader;
pub use self::writer::{RedisStreamWriter, DEFAULT_DEDUPLICATE_FOR};

/// Payloads larger than this go to the dead letters unless `.max_bytes(..)` says otherwise.
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 1024 * 1024;
/// How long the source waits for a server that stopped answering unless `.retry_for(..)` says
/// otherwise; the sink and the acknowledgement wait as long.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(30);

/// How long one `XREADGROUP` waits for new entries: the executor checks for a stop request
/// between reads, so this bounds how long a stop waits for an idle source.
const BLOCK: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A server that takes longer than this to answer a command (beyond the `BLOCK` wait) counts as
/// gone.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Ids per `XACK`.
const ACK_CHUNK: usize = 5000;
/// Entries per `XADD` pipeline.
const DEFAULT_WRITE_BATCH: usize = 512;

/// Redis Streams: `RedisStream::<T>::read(url)` reads `T`s through a consumer group,
/// `RedisStream::write(url)` appends any `Serialize`. Each entry carries one element as JSON in
/// one field (`data` unless `.field(..)` says otherwise).
///
/// Both take a URL `redis://[user:password@]host[:port]/STREAM[?group=G&consumer=C&db=N]`: the
/// path is the stream's key (percent-decoded), `group` names the source's consumer group (required
/// to read, refused to write), `consumer` its name in the group (default `HOST-PID`), `db` the
/// database number (default 0). TLS (`rediss://`) and Unix sockets are not supported.
///
/// # What the source promises
///
/// - **Acknowledged at checkpoints.** The source remembers the id of every entry it hands on,
///   good or dead-lettered, and `XACK`s them at the first checkpoint whose barrier every sink of
///   the run has reached durably (`--checkpoint-interval`, see `tandem::checkpoint`): a Redis
///   stream sink is durable at each checkpoint, a file sink only at the end of the run, and then
///   the entries are acknowledged after its commit. Nothing is acknowledged after a run fails.
///   So the pending list of a live run holds about one checkpoint interval of entries.
/// - **Nothing lost after a crash, for a consumer that keeps its name.** On open the source first
///   reads its consumer's own pending entries (delivered before but never acknowledged), then new
///   ones (`XREADGROUP ... >`); after a reconnection, the pending entries whose reply was lost
///   with the connection. The default consumer name (`HOST-PID`) is new for every process, so a
///   restarted process finds its predecessor's pending entries only when it sets `consumer=` to
///   the same name, or when `.claim_after(..)` lets it claim them.
/// - **Claiming** (`.claim_after(idle)`, off by default) takes over the group's entries that have
///   been pending longer than `idle` (`XAUTOCLAIM`), whichever consumer holds them. Entries stay
///   pending until the checkpoint after them is complete, so it must exceed the longest a live
///   consumer's checkpoint can take (a window held open by `combine_per_key` included), or two
///   live consumers take each other's entries (duplicates, not losses). The source never hands on an entry twice in one run, even when it claims its own.
/// - **Unbounded by default**: the source waits for new entries until the run is asked to stop
///   (SIGINT/SIGTERM, [`crate::StopSignal`]). `.until_idle(d)` ends the input when nothing new
///   arrives for `d`, for batch jobs and tests.
/// - **A lost server is waited for**: the source reconnects with exponential backoff (each attempt
///   logged), re-creating the consumer group where the entries it read left off if the server lost
///   it, and fails the run after `.retry_for(d)` (default 30 s) without an answer.
///
/// # What the sink promises: exactly once, by default
///
/// The sink appends with `XADD` as the run goes (pipelined in batches, sent when a batch is full,
/// whenever its segment waits for input and at each checkpoint); the entries are visible at once.
/// Each element has an id made of where it came from — its source stage and position there
/// (for this source, the entry id; for files, the line) and how many elements of that position
/// came before it (`SOURCE:POSITION:N`) — and a Lua script appends it only if that id is not in
/// the sorted set `{STREAM}:tandem-written` yet (`ZADD NX`, in the stream's hash slot). So what
/// a restarted run reads again, and a batch sent again after a broken connection, is not written
/// twice. Ids are forgotten after `.deduplicate_for(d)` (24 hours by default; trimmed at each
/// checkpoint). `.at_least_once()` turns this off (plain `XADD`, no set): then the outputs of
/// the epoch a crash interrupted appear again after the restart.
///
/// For the ids to be the same in the restarted run, the pipeline must produce the same elements
/// in the same order for each position: true of element-wise stages, models, partitions and
/// windows fed by one segment; two copies of one element (a stream consumed twice) merged back
/// across segments may swap their `N`.
///
/// A server that does not answer for `.retry_for(d)` (default 30 s) fails the run, at the next
/// moment the sink's segment waits for input or at its end; elements that reach the sink in
/// between go to the dead letters, and nothing is acknowledged.
pub struct RedisStream<T = ()>(PhantomData<T>);

impl<T: DeserializeOwned + Send> RedisStream<T> {
    /// Reads a stream through the consumer group named in `url` (created if missing, at the end
    /// of the stream unless `.from_start()`). An entry whose payload is not a valid `T` goes to
    /// the dead letters, with the stream and the entry id in the error. Each record's position
    /// (in dead letters, and what sinks see) is its entry id as one number, `ms * 1_000_000 +
    /// seq`, so that it is the same when a restarted run reads the entry again.
    pub fn read(url: impl Into<String>) -> RedisStreamReader<T> {
        RedisStreamReader::new(url.into())
    }
}

impl RedisStream {
    /// Appends each element to the stream in `url` as JSON in the field `data`.
    pub fn write(url: impl Into<String>) -> RedisStreamWriter {
        RedisStreamWriter::new(url.into())
    }
}
