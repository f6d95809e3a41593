//! The runtime that `pipeline!`-generated code calls: stage traits and transforms, sources and
//! sinks, the fused executor, dead letters, the run summary, the graph and the standard CLI.
//!
//! Users normally reach this crate through the `tandem` facade and its `prelude`.

// The layers, bottom to top; a module imports only from layers below its own.
//
// 1. Foundations, importing nothing above them: `checkpoint` (epochs and acknowledgements),
//    `checks` (the markers of stage checks), `error`, `deadletter`, `graph`, `hash`, `panic`,
//    `queue`, `metrics` (model figures and their Prometheus text), `window` (window specs and
//    combiners), `split` (partitioners), `io` (sources and sinks).
// 2. `context`: the run context every segment shares (counters, dead letters, failure, commits).
// 3. `push`: the protocol every fused stage implements.
// 4. `stage_fns` (what each stage's function must be) and `ops` (the fused stages, channels).
// 5. `inference`: `run_inference`'s front, batcher, replicas, reorder buffer and hot swap.
// 6. `stages`: the typed constructors generated code calls, one per stage.
// 7. `cluster`: the worker and process options (`--workers`, `--processes`, ...).
// 8. `exec`: the executor of one worker's share; `serve` (the metrics endpoint) and `summary`
//    beside it.
// 9. `distributed` (feature `timely`, the only module that uses it): a run split across worker
//    threads and processes; `job`: `run_pipeline`, which runs on one worker or on several.
// 10. `cli`: the standard command line of a pipeline binary.
pub mod checkpoint;
#[doc(hidden)]
pub mod checks;
pub mod deadletter;
mod error;
pub mod graph;
pub mod hash;
pub mod io;
pub mod metrics;
mod panic;
pub mod queue;
pub mod split;
pub mod window;

pub mod context;

pub mod push;

pub mod ops;
pub mod stage_fns;

pub mod inference;

pub mod stages;

pub mod cluster;
#[cfg(feature = "timely")]
pub mod distributed;
#[doc(hidden)]
pub mod exchange;
pub mod exec;
pub mod job;
pub mod local;
#[doc(hidden)]
pub mod segment;
mod serve;
pub mod summary;

pub mod cli;

pub use context::StopSignal;
pub use error::{Error, Result};
pub use exec::{Pipeline, RunConfig};
pub use graph::{Graph, StageInfo, StageKind};
pub use push::Pos;
pub use summary::Summary;

/// What a pipeline file needs in scope.
pub mod prelude {
    pub use crate::cli::PipelineMain;
    pub use crate::context::StopSignal;
    pub use crate::deadletter::{DeadLetter, DeadLetterTarget};
    pub use crate::exec::{Pipeline, RunConfig};
    pub use crate::hash::StableKey;
    pub use crate::inference::{
        keyed, Batching, DeviceChoice, DeviceRequest, HandlerExt, Loaded, ModelHandler,
        PredictionResult,
    };
    #[cfg(feature = "kafka")]
    pub use crate::io::Kafka;
    pub use crate::io::{Collector, Csv, JsonLines, Memory, RedisStream};
    pub use crate::split::{split_by, split_random};
    pub use crate::window::{
        processing_time, Combined, Combiner, Count, Ctr, CtrStats, Fixed, Max, Mean, Min,
        ProcessingTime, Sliding, Sum, TopK, Window, Windowed,
    };
    pub use crate::{Error, Result, Summary};
}

/// Used by generated code only; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::exec::{channel_for, Executor, Pipeline, RunConfig};
    pub use crate::graph::Edge;
    pub use crate::job::{run_async, run_pipeline};
    pub use crate::stages::*;
    pub use crate::summary::Summary;
    pub use crate::{Error, Result};

    /// The arguments of a pipeline declared without any.
    #[derive(Clone, Copy, Debug, Default, clap::Args)]
    pub struct NoArgs {}
    pub use crate::graph::{Graph, StageInfo, StageKind};
    pub use crate::ops::*;
    pub use crate::push::{Pos, Push};
    pub use clap;
    pub use std;
}
