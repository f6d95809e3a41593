//! A cluster that stops answering: which errors may pass, and waiting for them with exponential
//! backoff up to a limit. librdkafka reconnects by itself; this decides when to give up.

use std::time::{Duration, Instant};

use rdkafka::types::RDKafkaErrorCode;

use super::{FIRST_BACKOFF, MAX_BACKOFF};

/// Whether an error may go away by itself: brokers unreachable, restarting or electing.
pub(super) fn transient(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        Some(
            BrokerTransportFailure
                | AllBrokersDown
                | Resolve
                | OperationTimedOut
                | TimedOutQueue
                | RequestTimedOut
                | NetworkException
                | CoordinatorLoadInProgress
                | CoordinatorNotAvailable
                | NotCoordinator
                | WaitingForCoordinator
                | LeaderNotAvailable
                | NotLeaderForPartition
        )
    )
}

/// Whether a commit was refused because the group is rebalancing, or has moved on without this
/// member: its offsets are left to the partitions' next owners.
pub(super) fn rebalancing(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        Some(
            RebalanceInProgress
                | IllegalGeneration
                | UnknownMemberId
                | AssignmentLost
                | StaleMemberEpoch
        )
    )
}

/// Waiting for a cluster that stopped answering: when to check again, and when to give up.
pub(super) struct Outage {
    pub since: Instant,
    pub attempts: u32,
    pub next_try: Instant,
    pub last_error: String,
    /// Whether the consumer reported an error since the last check: then a check that succeeds
    /// does not end the outage.
    pub errors_since_check: bool,
}

impl Outage {
    pub fn new(error: String) -> Self {
        let now = Instant::now();
        Self {
            since: now,
            attempts: 0,
            next_try: now + FIRST_BACKOFF,
            last_error: error,
            errors_since_check: false,
        }
    }

    /// Records a failed attempt; returns the wait before the next one.
    pub fn failed(&mut self, error: String) -> Duration {
        self.attempts += 1;
        self.last_error = error;
        let wait = FIRST_BACKOFF
            .saturating_mul(1 << (self.attempts - 1).min(16))
            .min(MAX_BACKOFF);
        self.next_try = Instant::now() + wait;
        wait
    }

    pub fn over(&self, limit: Duration) -> bool {
        self.since.elapsed() >= limit
    }

    pub fn gave_up(&self, brokers: &str, limit: Duration) -> String {
        format!(
            "the Kafka cluster at {brokers} did not answer for {:.1?} ({} attempt{}, `retry_for` is {limit:?}); last error: {}",
            self.since.elapsed(),
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            self.last_error
        )
    }
}
