//! A cluster that stops answering: which errors may pass, and waiting for them with exponential
//! backoff up to a limit. librdkafka reconnects by itself; this decides when to give up.

use rdkafka::types::RDKafkaErrorCode;

pub(super) use crate::io::outage::Outage;

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
