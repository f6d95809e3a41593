use super::{OpSpec, Role};

/// Discards the elements on purpose (counted as dropped).
pub const SPEC: OpSpec = OpSpec {
    name: "drop",
    role: Role::Sink,
    args: Some(0),
    kind: "Drop",
    check: "discard",
    usage: "drop()",
    loads: false,
};
