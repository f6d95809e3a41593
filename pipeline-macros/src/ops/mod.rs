//! One operator per file, each a declarative spec: its role in the graph, how many arguments it
//! takes, the runtime constructor that type-checks it and the `StageKind` it reports as. The
//! phases read these specs; none of them matches on operator names.

mod combine_per_key;
mod drop;
mod filter;
mod flat_map;
mod inspect;
mod key_by;
mod map;
mod merge;
mod partition;
mod read;
mod run_inference;
mod try_map;
mod window;
mod write;

/// Where an operator may stand in a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Starts a chain from outside data.
    Source,
    /// Starts a chain from several streams.
    Merge,
    /// One input, one output stream, fused into its segment.
    Element,
    /// One input, several output streams (bound with `[a, b] = ..`).
    Partition,
    /// Ends a chain.
    Sink,
}

pub struct OpSpec {
    pub name: &'static str,
    pub role: Role,
    /// Number of arguments; `None` for "two or more" (merge).
    pub args: Option<usize>,
    /// The `tandem::StageKind` variant.
    pub kind: &'static str,
    /// The constructor in `tandem::__private` (see the runtime's `check` module).
    pub check: &'static str,
    /// How to call it, for error messages.
    pub usage: &'static str,
    /// Whether building it loads something through the executor before the run (a model).
    pub loads: bool,
}

pub const ALL: &[&OpSpec] = &[
    &read::SPEC,
    &merge::SPEC,
    &map::SPEC,
    &filter::SPEC,
    &flat_map::SPEC,
    &try_map::SPEC,
    &inspect::SPEC,
    &key_by::SPEC,
    &partition::SPEC,
    &run_inference::SPEC,
    &window::SPEC,
    &combine_per_key::SPEC,
    &write::SPEC,
    &drop::SPEC,
];

pub fn lookup(name: &str) -> Option<&'static OpSpec> {
    ALL.iter().copied().find(|op| op.name == name)
}
