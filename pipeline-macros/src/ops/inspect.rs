use super::{OpSpec, Role};

/// Sees each element by reference.
pub const SPEC: OpSpec = OpSpec {
    name: "inspect",
    role: Role::Element,
    args: Some(1),
    kind: "Inspect",
    check: "inspect",
    usage: "inspect(|x: &T| ..)",
    loads: false,
};
