use super::{OpSpec, Role};

/// Zero or more outputs per input.
pub const SPEC: OpSpec = OpSpec {
    name: "flat_map",
    role: Role::Element,
    args: Some(1),
    kind: "FlatMap",
    check: "flat_map",
    usage: "flat_map(|x| iterable)",
    loads: false,
};
