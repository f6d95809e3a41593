//! Kafka (feature `kafka`, librdkafka through the `rdkafka` crate): a source that reads a topic as
//! a member of a consumer group, and a sink that produces to a topic. What they promise is
//! documented on [`Kafka`].

mod address;
mod context;
mod reader;
mod records;
mod retry;
mod writer;

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;

pub use self::reader::KafkaReader;
pub use self::writer::KafkaWriter;

/// Payloads larger than this go to the dead letters unless `.max_bytes(..)` says otherwise.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// How long one poll of the consumer waits for a message: the executor checks for a stop request
/// between reads, so this bounds how long a stop waits for an idle source.
const POLL: Duration = Duration::from_millis(100);
/// How long opening waits for the cluster's answer about the topic before going on without it.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one check of a cluster that stopped answering waits.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Kafka: `Kafka::<T>::read(url)` reads `T`s as a member of a consumer group,
/// `Kafka::write(url)` produces any `Serialize`. Each message's value holds one element as JSON.
///
/// Both take a URL `kafka://HOST[:PORT][,HOST[:PORT]...]/TOPIC[?group=G]`: the bootstrap
/// brokers (port 9092 unless given), the topic (percent-decoded; Kafka's characters only:
/// letters, digits, `.`, `_`, `-`), and for the source its consumer group (required to read,
/// refused to write). Anything else librdkafka knows (`session.timeout.ms`,
/// `fetch.max.bytes`, ...) is set with `.config(key, value)`. This build of librdkafka has no
/// TLS and no SASL: brokers that require them cannot be reached.
///
/// # What the source promises
///
/// - **Offsets committed at checkpoints, never automatically** (`enable.auto.commit=false`).
///   For each partition, the source remembers the offset after the last message it handed on,
///   good or dead-lettered. At each checkpoint it hands those offsets to the run, which commits
///   them (a synchronous offset commit to the group's coordinator) once everything read before
///   the checkpoint's barrier has reached every sink durably (see `tandem::checkpoint`): a Kafka
///   or Redis sink is durable at each checkpoint, a file sink only at the end of the run, and
///   then the offsets are committed after its commit. Nothing is committed after a run fails.
/// - **Nothing lost after a crash.** A restarted process that joins the same group resumes every
///   partition at its committed offset: what was handed on but not committed is read again (at
///   least once). A group has no names of members to keep: any process with the same `group=`
///   resumes where the group left off.
/// - **Rebalances** (a member joins or leaves): a partition taken from this member is read by its
///   next owner from the committed offset, so the messages this member handed on since its last
///   complete checkpoint are read again — by the new owner, or by this member when the partition
///   comes back (an eager rebalance takes every partition away and hands them out again): at
///   least once. This member still commits what it handed on from a partition it lost, at its
///   next checkpoint; the broker accepts it from a member of the group, and if the new owner had
///   committed further already, the group's offset goes back — more duplicates, never a loss,
///   since every offset committed is that of messages that reached every sink. A commit that the
///   coordinator refuses because the group is rebalancing is logged and skipped, for the same
///   reason.
/// - **Where a new group starts**: at the end of each partition (`auto.offset.reset=latest`,
///   Kafka's own default): only messages produced after the group first joined are read.
///   `.from_start()` starts it at the earliest message kept (`earliest`). A partition with a
///   committed offset resumes there either way.
/// - **Unbounded by default**: the source waits for new messages until the run is asked to stop
///   (SIGINT/SIGTERM, [`crate::StopSignal`]), polling with a short timeout so that a stop is
///   seen at once. `.until_idle(d)` ends the input when no message arrives for `d`, counted from
///   when the consumer joined its group (a join takes a rebalance: seconds), for batch jobs and
///   tests; a cluster that does not answer is waited for (below), not taken for a quiet topic.
///   Once the input has ended the consumer stays in its group, unpolled, until the run's final
///   commit: should the rest of the run take longer than librdkafka's `max.poll.interval.ms`
///   (5 minutes; `.config(..)` raises it), it leaves the group, the final commit is refused, and
///   the last epoch's messages are read again.
/// - **A lost cluster is waited for**: librdkafka reconnects by itself, with backoff (its log
///   lines go to `tracing`); the source checks the cluster with backoff meanwhile and fails the
///   run once it has not answered for `.retry_for(d)` (default 30 s). A commit waits as long.
///
/// Each record's position (in dead letters, and what sinks see) is its partition and offset as
/// one number, `partition << 48 | offset` ([`Kafka::position`], [`Kafka::partition_offset`]), so
/// that it is the same when a restarted run reads the message again. Partitions above 65,535 and
/// offsets from 2^48 on share the last position of their range.
///
/// # What the sink promises: at least once, with a key to deduplicate by
///
/// The sink is an idempotent producer (`enable.idempotence=true`, so `acks=all`): librdkafka's
/// own retries within a run neither duplicate nor reorder messages of a partition. It sends as
/// the run goes (librdkafka batches them); whenever its segment waits for input it serves the
/// delivery reports, and at each checkpoint and at the end it waits for every delivery report:
/// a message that could not be delivered (within `.retry_for(d)`, librdkafka's
/// `message.timeout.ms`) fails the run, and nothing read after the last complete checkpoint is
/// committed. An element that cannot be sent at all (larger than the producer's
/// `message.max.bytes`, 1 MB) goes to the dead letters.
///
/// Each message's key is made of where its element came from — its source stage and position
/// there (for the Kafka source, partition and offset; for files, the line) and how many elements
/// of that position came before it: `SOURCE:POSITION:N`. After a crash, the messages the
/// restarted run produces again (those of the epoch the crash interrupted) carry the same keys,
/// and go to the same partition (the default partitioner hashes the key, so as long as the topic
/// keeps its number of partitions): a consumer that keeps the keys it has seen recently, or a
/// compacted topic, sees each element once. The topic itself may hold an element twice: this is
/// **at least once**. Exactly once would take Kafka's transactions (a transaction per epoch,
/// committed at the checkpoint, read with `isolation.level=read_committed`); librdkafka's mock
/// cluster, the only Kafka the tests have, does not model them — its fetches ignore the
/// isolation level and report no aborted transactions, and it writes no transaction markers — so
/// they could not be tested and are not offered.
///
/// For the keys to be the same in the restarted run, the pipeline must produce the same elements
/// in the same order for each position (see [`crate::io::RedisStream`]). Elements written
/// without a position (by your own code through `Sink::write`) have no key.
pub struct Kafka<T = ()>(PhantomData<T>);

impl<T: DeserializeOwned + Send> Kafka<T> {
    /// Reads a topic as a member of the consumer group named in `url`. A message whose value is
    /// not a valid `T` (or has no value, or is larger than `.max_bytes(..)`) goes to the dead
    /// letters, with the topic, the partition and the offset in the error.
    pub fn read(url: impl Into<String>) -> KafkaReader<T> {
        KafkaReader::new(url.into())
    }
}

impl Kafka {
    /// Produces each element to the topic in `url`, as JSON in the message's value.
    pub fn write(url: impl Into<String>) -> KafkaWriter {
        KafkaWriter::new(url.into())
    }

    /// A message's position in a pipeline: `partition << 48 | offset`.
    pub fn position(partition: i32, offset: i64) -> u64 {
        records::position(partition, offset)
    }

    /// The partition and offset of a position made by [`Kafka::position`].
    pub fn partition_offset(position: u64) -> (i32, i64) {
        records::partition_offset(position)
    }
}
