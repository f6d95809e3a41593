//! A small classifier with deterministic weights (4 inputs, 8 hidden ReLU units, 3 softmax
//! outputs): the model the inference tests run, on flex and on wgpu. Its weights come from a
//! formula, not from training, so [`reference`] can recompute every output independently of Burn.
//!
//! - `model`: [`TinyMlpConfig`], [`TinyMlp`] and [`reference`];
//! - `handler`: [`TinyClassifier`], the `ModelHandler`.

mod handler;
mod model;

pub use handler::TinyClassifier;
pub use model::{reference, TinyMlp, TinyMlpConfig, CLASSES, HIDDEN, INPUTS};
