use super::{OpSpec, Role};

/// Reads elements from a source (files, stdin, memory).
pub const SPEC: OpSpec = OpSpec {
    name: "read",
    role: Role::Source,
    args: Some(1),
    kind: "Source",
    check: "source",
    usage: "read(JsonLines::<T>::open(path))",
    loads: false,
};
