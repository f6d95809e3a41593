use super::{OpSpec, Role};

/// Pairs each element with a key: (key, element).
pub const SPEC: OpSpec = OpSpec {
    name: "key_by",
    role: Role::Element,
    args: Some(1),
    kind: "KeyBy",
    check: "key_by",
    usage: "key_by(|x: &T| key)",
    loads: false,
};
