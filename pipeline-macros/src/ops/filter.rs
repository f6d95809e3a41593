use super::{OpSpec, Role};

/// Keeps the elements for which the predicate holds.
pub const SPEC: OpSpec = OpSpec {
    name: "filter",
    role: Role::Element,
    args: Some(1),
    kind: "Filter",
    check: "filter",
    usage: "filter(|x: &T| ..)",
    loads: false,
};
