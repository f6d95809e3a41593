use super::{OpSpec, Role};

/// One output per input.
pub const SPEC: OpSpec = OpSpec {
    name: "map",
    role: Role::Element,
    args: Some(1),
    kind: "Map",
    check: "map",
    usage: "map(|x| ..)",
    loads: false,
};
