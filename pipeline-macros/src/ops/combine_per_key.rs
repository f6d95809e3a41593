use super::{OpSpec, Role};

/// Folds each window's elements per key; one result per window and key.
pub const SPEC: OpSpec = OpSpec {
    name: "combine_per_key",
    role: Role::Element,
    args: Some(2),
    kind: "Combine",
    check: "combine_per_key",
    usage: "combine_per_key(|x| key, Count)",
    loads: false,
};
