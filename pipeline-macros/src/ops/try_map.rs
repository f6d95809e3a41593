use super::{OpSpec, Role};

/// Ok values go on, errors go to the dead letters.
pub const SPEC: OpSpec = OpSpec {
    name: "try_map",
    role: Role::Element,
    args: Some(1),
    kind: "TryMap",
    check: "try_map",
    usage: "try_map(|x| -> Result<_, _> ..)",
    loads: false,
};
