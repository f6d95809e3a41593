//! The sink: an idempotent producer whose messages are keyed by where their elements came from,
//! and which waits for every delivery report at each checkpoint.

use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use serde::Serialize;

use super::address::{shown_url, Address, Role};
use super::context::{shown, ProducerLogs};
use super::reader::config_error;
use super::METADATA_TIMEOUT;
use crate::io::{Commit, Pos, Sink, DEFAULT_RETRY_FOR};

type Producer_ = BaseProducer<ProducerLogs>;

/// librdkafka properties the sink sets itself, and why they cannot be changed.
const OWN_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "the URL names the brokers"),
    (
        "enable.idempotence",
        "retries must neither duplicate nor reorder messages",
    ),
    ("message.timeout.ms", "use `.retry_for(..)`"),
    ("delivery.timeout.ms", "use `.retry_for(..)`"),
];

/// How much longer than `message.timeout.ms` a checkpoint waits for the last delivery reports:
/// by then librdkafka has reported every message, delivered or not.
const REPORT_MARGIN: Duration = Duration::from_secs(5);
/// How long a send waits between two tries while librdkafka's queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(50);
/// Delivery reports are served every this many sends, besides whenever the segment waits: a
/// message's memory is freed only once its report has been served.
const SERVE_REPORTS_EVERY: u64 = 256;

/// See [`Kafka::write`](super::Kafka::write).
pub struct KafkaWriter {
    url: String,
    address: Result<Address, String>,
    retry_for: Duration,
    config: Vec<(String, String)>,
    producer: Option<Producer_>,
    /// The position of the last element and how many elements had it before (a `flat_map`'s
    /// outputs, a window's results share their input's position).
    last: Option<(Pos, u32)>,
    /// Why the sink stopped writing, once it has.
    failed: Option<String>,
    sent: u64,
}

impl KafkaWriter {
    pub(super) fn new(url: String) -> Self {
        Self {
            address: Address::parse(&url, Role::Write),
            url,
            retry_for: DEFAULT_RETRY_FOR,
            config: Vec::new(),
            producer: None,
            last: None,
            failed: None,
            sent: 0,
        }
    }

    /// How long a message may wait for the cluster before its delivery fails, and the run with
    /// it (default 30 s): librdkafka's `message.timeout.ms`.
    pub fn retry_for(mut self, limit: Duration) -> Self {
        self.retry_for = limit;
        self
    }

    /// Sets a librdkafka producer property (`linger.ms`, `compression.type`, ...; see
    /// librdkafka's CONFIGURATION.md). An unknown property or value fails the run at start-up;
    /// the properties the sink sets itself (brokers, idempotence, timeouts) are refused.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    fn what(&self) -> String {
        match &self.address {
            Ok(a) => format!("Kafka topic `{}` at {}", a.topic, a.brokers),
            Err(_) => format!("Kafka topic {}", shown_url(&self.url)),
        }
    }

    fn write_error(&self, message: String) -> crate::Error {
        crate::Error::Write {
            what: self.what(),
            message,
        }
    }

    fn create(&self, address: &Address) -> crate::Result<Producer_> {
        let what = self.what();
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &address.brokers)
            .set("enable.idempotence", "true")
            .set(
                "message.timeout.ms",
                self.retry_for
                    .as_millis()
                    .clamp(1, i32::MAX as u128)
                    .to_string(),
            )
            .set("client.id", "tandem");
        for (key, value) in &self.config {
            if let Some((_, why)) = OWN_PROPERTIES.iter().find(|(own, _)| own == key) {
                return Err(crate::Error::Config(format!(
                    "cannot write to {what}: `.config(\"{key}\", ..)`: the sink sets `{key}` itself ({why})"
                )));
            }
            config.set(key, value);
        }
        config
            .create_with_context(ProducerLogs::new(what.clone()))
            .map_err(|e| {
                crate::Error::Config(format!("cannot write to {what}: {}", config_error(&e)))
            })
    }

    /// Sends one message; librdkafka delivers it in the background.
    fn send<T: Serialize>(&mut self, key: Option<&[u8]>, item: &T) -> Result<(), String> {
        if let Some(failed) = &self.failed {
            return Err(format!("the sink stopped writing earlier: {failed}"));
        }
        let (Some(producer), Ok(address)) = (&self.producer, &self.address) else {
            return Err("the sink was not opened".into());
        };
        let payload = serde_json::to_vec(item).map_err(|e| e.to_string())?;
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(&address.topic).payload(&payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        let mut queue_full_since = None;
        loop {
            let error = match producer.send(record) {
                Ok(()) => {
                    self.sent += 1;
                    if self.sent.is_multiple_of(SERVE_REPORTS_EVERY) {
                        producer.poll(Duration::ZERO);
                    }
                    return Ok(());
                }
                Err((error, back)) => {
                    record = back;
                    error
                }
            };
            match error.rdkafka_error_code() {
                // Deliveries are slower than the pipeline: wait for some (the pipeline slows
                // down), up to `retry_for`.
                Some(RDKafkaErrorCode::QueueFull) => {
                    let since = *queue_full_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < self.retry_for {
                        producer.poll(QUEUE_FULL_WAIT);
                        continue;
                    }
                    let message = format!(
                        "librdkafka's queue of messages to send stayed full for {:?} (`retry_for`)",
                        self.retry_for
                    );
                    self.failed = Some(message.clone());
                    return Err(message);
                }
                Some(RDKafkaErrorCode::MessageSizeTooLarge) => {
                    return Err(format!(
                        "the message is {} bytes, more than the producer's `message.max.bytes`",
                        payload.len() + key.map_or(0, <[u8]>::len)
                    ))
                }
                Some(RDKafkaErrorCode::Fatal) => {
                    let message = fatal(producer).unwrap_or_else(|| shown(&error));
                    self.failed = Some(message.clone());
                    return Err(message);
                }
                _ => return Err(shown(&error)),
            }
        }
    }

    /// Fails once a delivery has failed, or the producer has hit a fatal error.
    fn check(&mut self) -> crate::Result<()> {
        if self.failed.is_none() {
            if let Some(producer) = &self.producer {
                let (failed, described) = producer.context().failures();
                if failed > 0 {
                    self.failed = Some(format!(
                        "{failed} message{} not delivered ({}{})",
                        if failed == 1 { "" } else { "s" },
                        described.join("; "),
                        if failed as usize > described.len() {
                            "; ..."
                        } else {
                            ""
                        }
                    ));
                } else if let Some(message) = fatal(producer) {
                    self.failed = Some(message);
                }
            }
        }
        match &self.failed {
            Some(failed) => Err(self.write_error(failed.clone())),
            None => Ok(()),
        }
    }

    /// Waits for the delivery report of every message sent.
    fn deliver_all(&mut self) -> crate::Result<()> {
        self.check()?;
        let Some(producer) = &self.producer else {
            return Ok(());
        };
        let flushed = producer.flush(self.retry_for + REPORT_MARGIN);
        let in_flight = producer.in_flight_count();
        self.check()?;
        if let Err(e) = flushed {
            let message = format!(
                "{in_flight} messages had no delivery report after {:?}: {}",
                self.retry_for + REPORT_MARGIN,
                shown(&e)
            );
            self.failed = Some(message.clone());
            return Err(self.write_error(message));
        }
        Ok(())
    }
}

/// A producer's fatal error (an idempotent producer that lost track of its sequence numbers),
/// after which it sends nothing more.
fn fatal(producer: &Producer_) -> Option<String> {
    producer
        .client()
        .fatal_error()
        .map(|(code, reason)| format!("fatal error: {code}: {reason}"))
}

impl<T: Serialize> Sink<T> for KafkaWriter {
    fn describe(&self) -> String {
        self.what()
    }

    /// Checks the URL and the properties and asks the cluster once whether the topic exists: a
    /// cluster that does not answer yet is waited for by the messages, up to `retry_for`.
    fn open(&mut self) -> crate::Result<()> {
        let address = self
            .address
            .as_ref()
            .map_err(|e| crate::Error::Config(e.clone()))?
            .clone();
        let producer = self.create(&address)?;
        let what = self.what();
        match producer
            .client()
            .fetch_metadata(Some(&address.topic), METADATA_TIMEOUT)
        {
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
                            "cannot write to {what}: the topic does not exist, and the cluster did not create it"
                        )))
                    }
                    Some(error) => tracing::warn!("{what}: {error}; writing goes on"),
                    None => {}
                }
            }
            Err(e) => tracing::warn!(
                "{what}: the cluster does not answer yet ({}); messages wait for it up to {:?}",
                shown(&e),
                self.retry_for
            ),
        }
        self.producer = Some(producer);
        Ok(())
    }

    fn write(&mut self, item: T) -> Result<(), String> {
        self.send(None, &item)
    }

    /// With the element's position: its key, `SOURCE:POSITION:N` (`N`: how many elements of that
    /// position came before it), the same when a restarted run writes the element again.
    fn write_at(&mut self, item: T, pos: Pos) -> Result<(), String> {
        let nth = match &mut self.last {
            Some((last, n)) if *last == pos => {
                *n += 1;
                *n
            }
            last => {
                *last = Some((pos, 0));
                0
            }
        };
        let key = format!("{}:{}:{nth}", pos.source, pos.index);
        self.send(Some(key.as_bytes()), &item)
    }

    /// Serves the delivery reports that came in; fails if a delivery failed.
    fn flush(&mut self) -> crate::Result<()> {
        if let Some(producer) = &self.producer {
            producer.poll(Duration::ZERO);
        }
        self.check()
    }

    /// At a checkpoint: every message sent so far is in the topic once its delivery report has
    /// come (with `acks=all`: on every in-sync replica).
    fn checkpoint(&mut self) -> crate::Result<bool> {
        self.deliver_all()?;
        Ok(true)
    }

    fn finish(&mut self) -> crate::Result<Option<Box<dyn Commit>>> {
        self.deliver_all()?;
        Ok(None)
    }
}
