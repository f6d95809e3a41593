use super::{OpSpec, Role};

/// Assigns each element to the event-time windows of `spec` by the time `f` reads from it.
pub const SPEC: OpSpec = OpSpec {
    name: "window",
    role: Role::Element,
    args: Some(2),
    kind: "Window",
    check: "window",
    usage: "window(Fixed::minutes(5), |x| x.time)",
    loads: false,
};
