use super::{OpSpec, Role};

/// Writes each element to a sink.
pub const SPEC: OpSpec = OpSpec {
    name: "write",
    role: Role::Sink,
    args: Some(1),
    kind: "Sink",
    check: "sink",
    usage: "write(JsonLines::create(path))",
    loads: false,
};
