//! The runtime that `pipeline!`-generated code calls: stage traits and transforms, sources and
//! sinks, the fused executor, dead letters, the run summary, the graph and the standard CLI.
//!
//! Users normally reach this crate through the `tandem` facade and its `prelude`.

pub mod check;
pub mod cli;
pub mod deadletter;
mod error;
pub mod exec;
pub mod graph;
pub mod hash;
pub mod inference;
pub mod io;
pub mod ops;
mod panic;
pub mod partition;
pub mod push;
pub mod queue;
mod serve;
pub mod summary;
pub mod window;

pub use error::{Error, Result};
pub use exec::{Pipeline, RunConfig, StopSignal};
pub use graph::{Graph, StageInfo, StageKind};
pub use push::Pos;
pub use summary::Summary;

/// What a pipeline file needs in scope.
pub mod prelude {
    pub use crate::cli::PipelineMain;
    pub use crate::deadletter::{DeadLetter, DeadLetterTarget};
    pub use crate::exec::{Pipeline, RunConfig, StopSignal};
    pub use crate::hash::StableKey;
    pub use crate::inference::{
        keyed, Batching, DeviceChoice, DeviceRequest, HandlerExt, Loaded, ModelHandler,
        PredictionResult,
    };
    pub use crate::io::{Collector, Csv, JsonLines, Memory};
    pub use crate::partition::{split_by, split_random};
    pub use crate::window::{
        Combined, Combiner, Count, Ctr, CtrStats, Fixed, Max, Mean, Min, Sliding, Sum, TopK,
        Window, Windowed,
    };
    pub use crate::{Error, Result, Summary};
}

/// Used by generated code only; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::check::*;
    pub use crate::exec::{run_async, run_pipeline, Executor, Pipeline, RunConfig, Shared};
    pub use crate::graph::Edge;
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
