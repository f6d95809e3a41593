//! tandem: multi-model machine-learning pipelines — A/B (champion/challenger) and cascades —
//! written as a typed dataflow graph with [`pipeline!`], checked by `cargo build`, and compiled
//! into a fused executor and a standalone binary.
//!
//! See the README for a tour; `tandem::prelude::*` brings in what a pipeline file needs.

pub use tandem_macros::pipeline;
pub use tandem_runtime::*;

/// What a pipeline file needs: the macro, sources and sinks, partitioners, the run types.
pub mod prelude {
    pub use tandem_macros::pipeline;
    pub use tandem_runtime::prelude::*;
}
