//! The source: a member of a consumer group that hands on what it polls, and commits the offsets
//! of what it handed on once the run's outputs are durable.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::de::DeserializeOwned;

use super::address::{shown_url, Address, Role};
use super::context::{shown, ConsumerLogs};
use super::records::{decode_value, position};
use super::retry::{rebalancing, transient, Outage};
use super::{DEFAULT_MAX_MESSAGE_BYTES, METADATA_TIMEOUT, POLL, PROBE_TIMEOUT};
use crate::io::{Commit, Record, Share, Source, DEFAULT_RETRY_FOR};

type Consumer_ = BaseConsumer<ConsumerLogs>;

/// librdkafka properties the source sets itself, and why they cannot be changed.
const OWN_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "the URL names the brokers"),
    ("group.id", "the URL names the group (`?group=`)"),
    (
        "enable.auto.commit",
        "offsets are committed at checkpoints, once the outputs are durable",
    ),
    (
        "enable.auto.offset.store",
        "offsets are committed at checkpoints, once the outputs are durable",
    ),
    ("auto.offset.reset", "use `.from_start()`"),
];

/// See [`Kafka::read`](super::Kafka::read).
pub struct KafkaReader<T> {
    url: String,
    address: Result<Address, String>,
    from_start: bool,
    until_idle: Option<Duration>,
    retry_for: Duration,
    max_bytes: usize,
    config: Vec<(String, String)>,
    /// Shared with the commits of checkpoints, which may run on another thread: librdkafka's
    /// consumer is thread-safe, and a synchronous commit waits on a queue of its own, not on the
    /// source's polls.
    consumer: Option<Arc<Consumer_>>,
    /// For each partition, the offset after the last message handed on since the last
    /// checkpoint: what the next commit sets.
    since_checkpoint: BTreeMap<i32, i64>,
    /// Messages handed on, for errors.
    read: u64,
    /// When a message last arrived, or the consumer joined its group; `None` before it joined.
    last_arrival: Option<Instant>,
    outage: Option<Outage>,
    /// Whether the consumer reported an error since the cluster was last checked during an
    /// outage: then a check that succeeds does not end the outage.
    errors_since_check: bool,
    /// In a split run: this worker's share. The topic's partitions are dealt to the workers
    /// (partition `p` to worker `p % peers`), each assigned to its consumer directly rather than
    /// by the group's rebalancing (see [`Source::split`]).
    share: Share,
    /// In a split run: whether this worker's partitions have been assigned (they are once the
    /// cluster has said how many the topic has).
    assigned: bool,
    _item: PhantomData<fn() -> T>,
}

impl<T> KafkaReader<T> {
    pub(super) fn new(url: String) -> Self {
        Self {
            address: Address::parse(&url, Role::Read),
            url,
            from_start: false,
            until_idle: None,
            retry_for: DEFAULT_RETRY_FOR,
            max_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            config: Vec::new(),
            consumer: None,
            since_checkpoint: BTreeMap::new(),
            read: 0,
            last_arrival: None,
            outage: None,
            errors_since_check: false,
            share: Share::WHOLE,
            assigned: false,
            _item: PhantomData,
        }
    }

    /// A group without committed offsets starts at the earliest message of each partition
    /// (`auto.offset.reset=earliest`). By default it starts at the end (`latest`): only messages
    /// produced after it joined are read. Partitions with committed offsets resume there either
    /// way.
    pub fn from_start(mut self) -> Self {
        self.from_start = true;
        self
    }

    /// Ends the input once no message has arrived for `idle`, counted from when the consumer
    /// joined its group (by default the source waits for messages until the run is asked to
    /// stop).
    pub fn until_idle(mut self, idle: Duration) -> Self {
        self.until_idle = Some(idle);
        self
    }

    /// How long to wait for a cluster that stopped answering before failing the run (default
    /// 30 s). A commit waits as long.
    pub fn retry_for(mut self, limit: Duration) -> Self {
        self.retry_for = limit;
        self
    }

    /// Values longer than this go to the dead letters (default 1 MiB).
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max;
        self
    }

    /// Sets a librdkafka consumer property (`session.timeout.ms`, `fetch.max.bytes`, ...; see
    /// librdkafka's CONFIGURATION.md). An unknown property or value fails the run at start-up;
    /// the properties the source sets itself (brokers, group, offset commits and reset) are
    /// refused.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    fn what(&self) -> String {
        match &self.address {
            Ok(a) => format!(
                "Kafka topic `{}` at {} (group `{}`)",
                a.topic, a.brokers, a.group
            ),
            Err(_) => format!("Kafka topic {}", shown_url(&self.url)),
        }
    }

    fn read_error(&self, message: String) -> crate::Error {
        crate::Error::Read {
            what: self.what(),
            position: self.read,
            source: std::io::Error::other(message),
        }
    }

    fn address(&self) -> crate::Result<&Address> {
        self.address
            .as_ref()
            .map_err(|e| crate::Error::Config(e.clone()))
    }

    fn create(&self, address: &Address) -> crate::Result<Consumer_> {
        let what = self.what();
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &address.brokers)
            .set("group.id", &address.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                if self.from_start {
                    "earliest"
                } else {
                    "latest"
                },
            )
            .set("client.id", "tandem");
        for (key, value) in &self.config {
            if let Some((_, why)) = OWN_PROPERTIES.iter().find(|(own, _)| own == key) {
                return Err(crate::Error::Config(format!(
                    "cannot read {what}: `.config(\"{key}\", ..)`: the source sets `{key}` itself ({why})"
                )));
            }
            config.set(key, value);
        }
        config
            .create_with_context(ConsumerLogs::new(what.clone()))
            .map_err(|e| crate::Error::Config(format!("cannot read {what}: {}", config_error(&e))))
    }

    /// Whether the cluster answers again, checked at most as often as the outage's backoff says;
    /// fails the run once it has not answered for `retry_for`.
    fn check_cluster(&mut self, consumer: &Consumer_, topic: &str) -> crate::Result<()> {
        let Some(outage) = &mut self.outage else {
            return Ok(());
        };
        if Instant::now() < outage.next_try {
            return Ok(());
        }
        let answer = match consumer.fetch_metadata(Some(topic), PROBE_TIMEOUT) {
            Ok(metadata) => match metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .and_then(|t| t.error())
            {
                Some(error) => Err(RDKafkaErrorCode::from(error).to_string()),
                None => Ok(()),
            },
            Err(e) => Err(shown(&e)),
        };
        match answer {
            Ok(()) if !self.errors_since_check => {
                let down_for = outage.since.elapsed();
                tracing::info!(
                    "{}: the cluster answers again after {down_for:.1?}",
                    self.what()
                );
                self.outage = None;
                // An outage is not a quiet topic: `until_idle` counts from now.
                if self.last_arrival.is_some() {
                    self.last_arrival = Some(Instant::now());
                }
                return Ok(());
            }
            Ok(()) => {
                let error = outage.last_error.clone();
                outage.failed(error);
            }
            Err(error) => {
                outage.failed(error);
            }
        }
        self.errors_since_check = false;
        let brokers = self.address.as_ref().map_or("", |a| a.brokers.as_str());
        if outage.over(self.retry_for) {
            let message =
                outage.gave_up(&format!("the Kafka cluster at {brokers}"), self.retry_for);
            return Err(self.read_error(message));
        }
        tracing::warn!(
            "the Kafka cluster at {brokers} does not answer ({}); checking again in {:?}, up to {:?} in all",
            outage.last_error,
            outage.next_try.saturating_duration_since(Instant::now()),
            self.retry_for
        );
        Ok(())
    }

    /// In a split run: assigns this worker its partitions of the topic, once the cluster says how
    /// many there are (`Ok(false)` while it does not answer). Each resumes at the group's
    /// committed offset (or where `.from_start()` says, without one).
    fn assign(&mut self, consumer: &Consumer_, topic: &str) -> crate::Result<bool> {
        let partitions = match consumer.fetch_metadata(Some(topic), PROBE_TIMEOUT) {
            Ok(metadata) => match metadata.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_none() => t.partitions().len(),
                _ => return Ok(false),
            },
            Err(_) => return Ok(false),
        };
        let Share { index, peers } = self.share;
        let mut list = TopicPartitionList::new();
        let mut mine = Vec::new();
        for partition in (0..partitions as i32).filter(|p| *p as usize % peers == index) {
            list.add_partition_offset(topic, partition, Offset::Stored)
                .map_err(|e| crate::Error::Internal(shown(&e)))?;
            mine.push(partition);
        }
        consumer.assign(&list).map_err(|e| {
            self.read_error(format!("cannot assign partitions {mine:?}: {}", shown(&e)))
        })?;
        if mine.is_empty() {
            tracing::warn!(
                "{}: the topic has {partitions} partition{}, fewer than the run's {peers} workers: worker {index} reads none",
                self.what(),
                if partitions == 1 { "" } else { "s" }
            );
        } else {
            tracing::info!(
                "{}: worker {index} of {peers} reads partitions {mine:?} of {partitions}",
                self.what()
            );
        }
        self.assigned = true;
        self.last_arrival = Some(Instant::now());
        Ok(!mine.is_empty())
    }

    /// An error from a poll: fatal ones fail the run, the others may be an outage.
    fn poll_failed(&mut self, error: KafkaError) -> crate::Result<()> {
        let code = error.rdkafka_error_code();
        match error {
            KafkaError::MessageConsumptionFatal(_) => {
                return Err(self.read_error(format!("fatal error: {}", shown(&error))))
            }
            KafkaError::PartitionEOF(_) => return Ok(()),
            _ => {}
        }
        if code == Some(RDKafkaErrorCode::AutoOffsetReset) {
            // librdkafka goes on from `auto.offset.reset`: the messages in between are gone.
            tracing::warn!(
                "{}: {}: the offset to read from is no longer in its partition (deleted by retention?); reading goes on from the {} message",
                self.what(),
                shown(&error),
                if self.from_start { "earliest" } else { "next new" }
            );
            return Ok(());
        }
        let shown = shown(&error);
        tracing::warn!(
            "{}: {shown}{}",
            self.what(),
            if transient(code) {
                "; librdkafka reconnects by itself"
            } else {
                ""
            }
        );
        match &mut self.outage {
            Some(outage) => {
                self.errors_since_check = true;
                outage.last_error = shown;
            }
            None => {
                self.outage = Some(Outage::new(shown));
                self.errors_since_check = false;
            }
        }
        Ok(())
    }
}

/// A configuration error as librdkafka words it.
pub(super) fn config_error(error: &KafkaError) -> String {
    match error {
        KafkaError::ClientConfig(_, description, key, value) => {
            format!("`.config(\"{key}\", \"{value}\")`: {description}")
        }
        other => shown(other),
    }
}

impl<T: DeserializeOwned + Send> Source for KafkaReader<T> {
    type Item = T;

    fn describe(&self) -> String {
        self.what()
    }

    /// Deals the topic's partitions to the workers: partition `p` to worker `p % peers`, over
    /// every process. Each worker's consumer is assigned its partitions directly instead of
    /// joining the group's rebalancing: members joining one after the other would move
    /// partitions between them while they read, and what one had read from a partition it lost
    /// would be read again by the next owner. Offsets are still committed in the group. The
    /// assignment is fixed for the run (partitions added while it runs are not read), and a
    /// worker dealt no partition (fewer partitions than workers) ends its share at once.
    fn split(&mut self, share: Share) -> bool {
        self.share = share;
        true
    }

    /// Checks the URL and the properties, asks the cluster once whether the topic exists (a
    /// cluster that does not answer yet is waited for while reading, where a stop request can end
    /// the wait), and subscribes.
    fn open(&mut self) -> crate::Result<()> {
        let address = self.address()?.clone();
        let consumer = self.create(&address)?;
        let what = self.what();
        match consumer.fetch_metadata(Some(&address.topic), METADATA_TIMEOUT) {
            Ok(metadata) => {
                let error = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == address.topic)
                    .and_then(|t| t.error())
                    .map(RDKafkaErrorCode::from);
                match error {
                    Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
                        return Err(crate::Error::Config(format!(
                            "cannot read {what}: the topic does not exist (a source does not create topics)"
                        )))
                    }
                    Some(error) => tracing::warn!("{what}: {error}; reading goes on"),
                    None => {}
                }
            }
            Err(e) => {
                tracing::warn!(
                    "{what}: the cluster does not answer yet ({}); waiting for it while reading",
                    shown(&e)
                );
                self.outage = Some(Outage::new(shown(&e)));
                self.errors_since_check = false;
            }
        }
        if self.share.is_whole() {
            consumer
                .subscribe(&[&address.topic])
                .map_err(|e| crate::Error::Config(format!("cannot read {what}: {}", shown(&e))))?;
        }
        self.consumer = Some(Arc::new(consumer));
        Ok(())
    }

    fn read_chunk<E: FnMut(Record<T>)>(&mut self, max: usize, mut emit: E) -> crate::Result<bool> {
        let (Some(consumer), Ok(address)) = (self.consumer.clone(), &self.address) else {
            return Err(self.read_error("the source was not opened".into()));
        };
        let topic = address.topic.clone();
        self.check_cluster(&consumer, &topic)?;
        // In a split run, this worker's partitions first: none for it (the run goes on without
        // it), or no answer yet.
        if !self.share.is_whole()
            && !self.assigned
            && self.outage.is_none()
            && !self.assign(&consumer, &topic)?
        {
            return Ok(!self.assigned);
        }
        if self.last_arrival.is_none() && consumer.context().joined() {
            self.last_arrival = Some(Instant::now());
        }
        // The wait is cut to what is left of `until_idle`; once that has passed, one last poll
        // without waiting: the input ends only when a poll finds nothing, however long the
        // pipeline took with what came before.
        let mut wait = match (self.until_idle, self.last_arrival) {
            (Some(idle), Some(last)) => POLL.min(idle.saturating_sub(last.elapsed())),
            _ => POLL,
        };
        let mut handed_on = 0;
        while handed_on < max.max(1) {
            let message = match consumer.poll(wait) {
                None => break,
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    self.poll_failed(error)?;
                    break;
                }
            };
            wait = Duration::ZERO;
            let (partition, offset) = (message.partition(), message.offset());
            self.since_checkpoint.insert(partition, offset + 1);
            self.read += 1;
            handed_on += 1;
            // Partition and offset are the position: the same when a restarted run reads the
            // message again, so a sink can tell (see `Kafka::write`).
            let position = position(partition, offset);
            emit(
                match decode_value(&topic, partition, offset, message.payload(), self.max_bytes) {
                    Ok(item) => Record::Good(position, item),
                    Err(bad) => Record::Bad(position, bad),
                },
            );
        }
        if handed_on > 0 {
            self.last_arrival = Some(Instant::now());
            if let Some(outage) = self.outage.take() {
                tracing::info!(
                    "{}: reading again after {:.1?}",
                    self.what(),
                    outage.since.elapsed()
                );
            }
            return Ok(true);
        }
        // Nothing came: the input goes on unless it has been quiet for `until_idle` (a cluster
        // that does not answer is waited for, up to `retry_for`, not taken for a quiet one).
        if self.outage.is_some() {
            return Ok(true);
        }
        Ok(self
            .until_idle
            .zip(self.last_arrival)
            .is_none_or(|(idle, last)| last.elapsed() < idle))
    }

    /// At each checkpoint and at the end: the commit of the offsets after what was handed on
    /// since the last one, run once what was made from it has reached every sink durably.
    fn checkpoint(&mut self) -> crate::Result<Option<Box<dyn Commit>>> {
        if self.since_checkpoint.is_empty() {
            return Ok(None);
        }
        let (Some(consumer), Ok(address)) = (&self.consumer, &self.address) else {
            return Ok(None);
        };
        Ok(Some(Box::new(CommitOffsets {
            consumer: consumer.clone(),
            what: self.what(),
            brokers: address.brokers.clone(),
            topic: address.topic.clone(),
            offsets: std::mem::take(&mut self.since_checkpoint),
            retry_for: self.retry_for,
        })))
    }

    fn acknowledges(&self) -> bool {
        true
    }
}

/// The commit of the offsets after what a source handed on, run once the outputs made from it
/// are durable; synchronous, from whichever thread completes the checkpoint.
struct CommitOffsets {
    consumer: Arc<Consumer_>,
    what: String,
    brokers: String,
    topic: String,
    offsets: BTreeMap<i32, i64>,
    retry_for: Duration,
}

impl CommitOffsets {
    fn described(&self) -> String {
        let offsets: Vec<String> = self
            .offsets
            .iter()
            .map(|(partition, offset)| format!("{partition}:{offset}"))
            .collect();
        offsets.join(", ")
    }
}

impl Commit for CommitOffsets {
    fn commit(self: Box<Self>) -> crate::Result<()> {
        let mut list = TopicPartitionList::with_capacity(self.offsets.len());
        for (&partition, &offset) in &self.offsets {
            list.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
                .map_err(|e| crate::Error::Internal(shown(&e)))?;
        }
        let mut outage: Option<Outage> = None;
        loop {
            let error = match self.consumer.commit(&list, CommitMode::Sync) {
                Ok(()) => {
                    if let Some(outage) = outage {
                        tracing::info!(
                            "{}: committed the offsets after {:.1?} without the cluster",
                            self.what,
                            outage.since.elapsed()
                        );
                    }
                    return Ok(());
                }
                Err(error) => error,
            };
            let code = error.rdkafka_error_code();
            if rebalancing(code) {
                tracing::warn!(
                    "{}: the offsets {} (partition:offset) were not committed: {}. The group rebalanced: the partitions' next owners read what came after their last committed offsets again (duplicates, not losses)",
                    self.what,
                    self.described(),
                    shown(&error)
                );
                return Ok(());
            }
            let failed = |message: String| {
                crate::Error::Write {
                what: format!("the offsets of {}", self.what),
                message: format!(
                    "{message}. The outputs are committed; the messages after the group's last committed offsets will be read again (duplicates, not losses)"
                ),
            }
            };
            if !transient(code) {
                return Err(failed(shown(&error)));
            }
            let outage = outage.get_or_insert_with(|| Outage::new(shown(&error)));
            let wait = outage.failed(shown(&error));
            if outage.over(self.retry_for) {
                let cluster = format!("the Kafka cluster at {}", self.brokers);
                return Err(failed(outage.gave_up(&cluster, self.retry_for)));
            }
            tracing::warn!(
                "{}: committing offsets failed: {}; retrying in {wait:?}",
                self.what,
                shown(&error)
            );
            std::thread::sleep(wait);
        }
    }
}
