//! The operator table, written once: each operator is a declarative spec of its role in the
//! graph, how many arguments it takes, the runtime constructor that type-checks it, the
//! `StageKind` it reports as, and the facts the phases need about it (whether it loads a model,
//! whether it is an output of the pipeline, where a partition's arms can be counted). The phases
//! read these specs; none of them matches on operator names.

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

impl Role {
    /// Whether the operator heads a statement instead of following `->`.
    pub fn starts_chain(self) -> bool {
        matches!(self, Self::Source | Self::Merge)
    }

    /// Whether the operator makes no stream, so nothing can follow it.
    pub fn ends_chain(self) -> bool {
        self == Self::Sink
    }
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
    /// The constructor used instead of `check` when the stage's input comes straight from a
    /// model stage, so that its mistakes are explained in terms of the `PredictionResult` it
    /// receives.
    pub after_model: Option<&'static str>,
    /// How to call it, for error messages.
    pub usage: &'static str,
    /// Whether building it loads something through the executor before the run (a model).
    pub loads: bool,
    /// Whether it is an output of the pipeline: such sinks are named `sink1`, `sink2`, .. in
    /// order, the names `--output` refers to.
    pub output: bool,
    /// For a partition: where the number of its arms can be read from its argument.
    pub arms: Option<Arms>,
}

/// A partition's argument `splitter(_, [r1, r2, ..])` written with a literal array of ratios, one
/// per arm.
pub struct Arms {
    /// The splitters (last path segment) whose arguments are read.
    pub splitters: &'static [&'static str],
    /// Which of the splitter's arguments is the array of ratios.
    pub ratios: usize,
}

pub static ALL: &[OpSpec] = &[
    // Reads elements from a source (files, stdin, memory).
    OpSpec {
        name: "read",
        role: Role::Source,
        args: Some(1),
        kind: "Source",
        check: "source",
        after_model: None,
        usage: "read(JsonLines::<T>::open(path))",
        loads: false,
        output: false,
        arms: None,
    },
    // Interleaves two or more streams of one type; order within each input is kept.
    OpSpec {
        name: "merge",
        role: Role::Merge,
        args: None,
        kind: "Merge",
        check: "merged",
        after_model: None,
        usage: "merge(a, b)",
        loads: false,
        output: false,
        arms: None,
    },
    // One output per input.
    OpSpec {
        name: "map",
        role: Role::Element,
        args: Some(1),
        kind: "Map",
        check: "map",
        after_model: Some("map_after_model"),
        usage: "map(|x| ..)",
        loads: false,
        output: false,
        arms: None,
    },
    // Keeps the elements for which the predicate holds.
    OpSpec {
        name: "filter",
        role: Role::Element,
        args: Some(1),
        kind: "Filter",
        check: "filter",
        after_model: None,
        usage: "filter(|x: &T| ..)",
        loads: false,
        output: false,
        arms: None,
    },
    // Zero or more outputs per input.
    OpSpec {
        name: "flat_map",
        role: Role::Element,
        args: Some(1),
        kind: "FlatMap",
        check: "flat_map",
        after_model: None,
        usage: "flat_map(|x| iterable)",
        loads: false,
        output: false,
        arms: None,
    },
    // Ok values go on, errors go to the dead letters.
    OpSpec {
        name: "try_map",
        role: Role::Element,
        args: Some(1),
        kind: "TryMap",
        check: "try_map",
        after_model: None,
        usage: "try_map(|x| -> Result<_, _> ..)",
        loads: false,
        output: false,
        arms: None,
    },
    // Sees each element by reference.
    OpSpec {
        name: "inspect",
        role: Role::Element,
        args: Some(1),
        kind: "Inspect",
        check: "inspect",
        after_model: None,
        usage: "inspect(|x: &T| ..)",
        loads: false,
        output: false,
        arms: None,
    },
    // Pairs each element with a key: (key, element).
    OpSpec {
        name: "key_by",
        role: Role::Element,
        args: Some(1),
        kind: "KeyBy",
        check: "key_by",
        after_model: None,
        usage: "key_by(|x: &T| key)",
        loads: false,
        output: false,
        arms: None,
    },
    // Sends each element to exactly one of several streams.
    OpSpec {
        name: "partition",
        role: Role::Partition,
        args: Some(1),
        kind: "Partition",
        check: "partition",
        after_model: None,
        usage: "[a, b] = s -> partition(split_by(|x: &T| key, [50, 50]))",
        loads: false,
        output: false,
        arms: Some(Arms {
            splitters: &["split_by", "split_random"],
            ratios: 1,
        }),
    },
    // Runs a model on batches of the stream: one `PredictionResult` per element.
    OpSpec {
        name: "run_inference",
        role: Role::Element,
        args: Some(1),
        kind: "Inference",
        check: "run_inference",
        after_model: None,
        usage: "run_inference(handler)",
        loads: true,
        output: false,
        arms: None,
    },
    // Assigns each element to the event-time windows of `spec` by the time `f` reads from it.
    OpSpec {
        name: "window",
        role: Role::Element,
        args: Some(2),
        kind: "Window",
        check: "window",
        after_model: None,
        usage: "window(Fixed::minutes(5), |x| x.time)",
        loads: false,
        output: false,
        arms: None,
    },
    // Folds each window's elements per key; one result per window and key.
    OpSpec {
        name: "combine_per_key",
        role: Role::Element,
        args: Some(2),
        kind: "Combine",
        check: "combine_per_key",
        after_model: None,
        usage: "combine_per_key(|x| key, Count)",
        loads: false,
        output: false,
        arms: None,
    },
    // Writes each element to a sink.
    OpSpec {
        name: "write",
        role: Role::Sink,
        args: Some(1),
        kind: "Sink",
        check: "sink",
        after_model: None,
        usage: "write(JsonLines::create(path))",
        loads: false,
        output: true,
        arms: None,
    },
    // Discards the elements on purpose (counted as dropped).
    OpSpec {
        name: "drop",
        role: Role::Sink,
        args: Some(0),
        kind: "Drop",
        check: "discard",
        after_model: None,
        usage: "drop()",
        loads: false,
        output: false,
        arms: None,
    },
];

pub fn lookup(name: &str) -> Option<&'static OpSpec> {
    ALL.iter().find(|op| op.name == name)
}
