//! What librdkafka calls back: its log lines and errors go to `tracing`, the consumer notes when it
//! has joined its group, the producer keeps its failed deliveries.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::ProducerContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

/// An error as librdkafka words it ("Broker: Unknown topic or partition"), without the wrapper's
/// "KafkaError (...)".
pub(super) fn shown(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => code.to_string(),
        None => error.to_string(),
    }
}

fn log(what: &str, level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!("librdkafka ({what}): {facility}: {message}"),
        RDKafkaLogLevel::Warning => tracing::warn!("librdkafka ({what}): {facility}: {message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!("librdkafka ({what}): {facility}: {message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!("librdkafka ({what}): {facility}: {message}"),
    }
}

/// The consumer's context.
pub(super) struct ConsumerLogs {
    what: String,
    /// Whether the consumer has taken part in a rebalance of its group: it has joined.
    joined: AtomicBool,
}

impl ConsumerLogs {
    pub fn new(what: String) -> Self {
        Self {
            what,
            joined: AtomicBool::new(false),
        }
    }

    pub fn joined(&self) -> bool {
        self.joined.load(Relaxed)
    }
}

impl ClientContext for ConsumerLogs {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log(&self.what, level, facility, message);
    }

    /// Errors reach the source through its polls as well: it decides there what they mean.
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("{}: {}: {reason}", self.what, shown(&error));
    }
}

impl ConsumerContext for ConsumerLogs {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &rdkafka::TopicPartitionList| {
            let mut numbers: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            numbers.sort_unstable();
            format!("{numbers:?}")
        };
        match rebalance {
            Rebalance::Assign(list) => {
                self.joined.store(true, Relaxed);
                tracing::info!(
                    "{}: assigned partitions {}",
                    self.what,
                    partitions(list)
                );
            }
            Rebalance::Revoke(list) => tracing::info!(
                "{}: partitions {} revoked; what was read from them since the last complete checkpoint is read again by their next owner",
                self.what,
                partitions(list)
            ),
            Rebalance::Error(e) => tracing::warn!("{}: rebalancing failed: {e}", self.what),
        }
    }
}

/// Deliveries that failed, kept for the sink's next flush; the first few are described.
const DESCRIBED_FAILURES: usize = 3;

/// The producer's context.
pub(super) struct ProducerLogs {
    what: String,
    failed: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl ProducerLogs {
    pub fn new(what: String) -> Self {
        Self {
            what,
            failed: AtomicU64::new(0),
            failures: Mutex::new(Vec::new()),
        }
    }

    /// How many deliveries failed so far, and the first few, described.
    pub fn failures(&self) -> (u64, Vec<String>) {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        (self.failed.load(Relaxed), failures.clone())
    }
}

impl ClientContext for ProducerLogs {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log(&self.what, level, facility, message);
    }

    /// A failed delivery or a fatal error reaches the sink through its delivery reports and
    /// `fatal_error`; what comes here are librdkafka's notices of brokers it is reconnecting to.
    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::Fatal) => {
                tracing::error!("{}: fatal error: {reason}", self.what)
            }
            _ => tracing::warn!("{}: {}: {reason}", self.what, shown(&error)),
        }
    }
}

impl ProducerContext for ProducerLogs {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let Err((error, message)) = result else {
            return;
        };
        self.failed.fetch_add(1, Relaxed);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() < DESCRIBED_FAILURES {
            let key = message
                .key()
                .map(|k| format!("`{}`", String::from_utf8_lossy(k)))
                .unwrap_or_else(|| "without a key".into());
            failures.push(format!("the message {key}: {}", shown(error)));
        }
    }
}
