use super::{OpSpec, Role};

/// Sends each element to exactly one of several streams.
pub const SPEC: OpSpec = OpSpec {
    name: "partition",
    role: Role::Partition,
    args: Some(1),
    kind: "Partition",
    check: "partition",
    usage: "[a, b] = s -> partition(split_by(|x: &T| key, [50, 50]))",
    loads: false,
};
