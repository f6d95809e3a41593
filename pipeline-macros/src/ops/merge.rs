use super::{OpSpec, Role};

/// Interleaves two or more streams of one type; order within each input is kept.
pub const SPEC: OpSpec = OpSpec {
    name: "merge",
    role: Role::Merge,
    args: None,
    kind: "Merge",
    check: "merged",
    usage: "merge(a, b)",
    loads: false,
};
