//! `run_inference(handler)`: a model in a pipeline, Beam's RunInference.
//!
//! A [`ModelHandler`] loads a model on a device and turns batches of typed inputs into typed
//! inferences; the stage batches the elements that reach it, runs the model, and passes on
//! [`PredictionResult`]s that keep their input and the model's id. The handler knows nothing of
//! Burn's backend types: it receives a [`DeviceChoice`] and picks the device itself (the
//! `tandem-models` crate does this for Burn), so this crate stays free of Burn.
//!
//! This first version batches inside the fused segment: a batch runs when it is full, when the
//! segment sends partial batches on (every 50 ms from a source, or before a channel waits), and at
//! the end. Replicas, a per-batch timeout, keyed models, hot swap and the metrics endpoint are the
//! next steps (see the README's status).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where models run: `--device auto|gpu|cpu` (`TANDEM_DEVICE`). `auto` takes a GPU when one can
/// be used, else the CPU; `gpu` without one is an error, not a silent fallback.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Gpu,
    Cpu,
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Gpu => "gpu",
            Self::Cpu => "cpu",
        })
    }
}

/// How a handler wants its inputs batched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    /// The largest batch handed to the model.
    pub max_batch: usize,
    /// The longest an element waits for its batch to fill (approximate in this version: partial
    /// batches run when the segment flushes, at least every 50 ms while a source is read).
    pub max_wait: Duration,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            max_batch: 32,
            max_wait: Duration::from_millis(50),
        }
    }
}

/// A model the pipeline can run: `run_inference(handler)`.
#[diagnostic::on_unimplemented(
    message = "`run_inference` takes a model handler, but `{Self}` is not one",
    label = "not a `ModelHandler`",
    note = "implement `tandem::inference::ModelHandler` for it (load, prepare, infer), or use a handler from `tandem-models`"
)]
pub trait ModelHandler: Send {
    /// What the stage receives.
    type Input: Send;
    /// One input turned into what the model takes (pre-processing, on the CPU).
    type Prepared: Send;
    /// What the model says about one input.
    type Inference: Send;
    /// A loaded model.
    type Model: Send;

    /// The id every result carries (a name and version, or the weights' hash).
    fn model_id(&self) -> String;

    fn batching(&self) -> Batching {
        Batching::default()
    }

    /// Loads the model on the chosen device; called once, before the pipeline reads anything.
    /// Returns the model and the name of the device it is on (for the summary).
    fn load(&self, device: DeviceChoice) -> Result<(Self::Model, String), String>;

    /// Pre-processes one input. An error sends that input alone to the dead letters.
    fn prepare(&self, input: &Self::Input) -> Result<Self::Prepared, String>;

    /// Runs the model on a batch; must return one inference per input, in order. An error sends
    /// the batch's elements to the dead letters.
    fn infer(
        &self,
        model: &mut Self::Model,
        batch: Vec<Self::Prepared>,
    ) -> Result<Vec<Self::Inference>, String>;
}

/// A model's answer for one input, with the input and the id of the model that gave it (Beam's
/// `PredictionResult`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PredictionResult<I, O> {
    pub example: I,
    pub inference: O,
    pub model_id: Arc<str>,
}

/// What one `run_inference` stage did, for the summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InferenceMetrics {
    pub stage: u32,
    pub model_id: String,
    pub device: String,
    pub load_time: Duration,
    pub inferences: u64,
    pub batches: u64,
    pub failed_batches: u64,
    /// Total time in `infer`, over all batches.
    pub busy: Duration,
    pub largest_batch: usize,
}

impl InferenceMetrics {
    pub fn mean_batch(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.inferences as f64 / self.batches as f64
        }
    }

    pub fn mean_latency(&self) -> Duration {
        self.busy
            .checked_div(self.batches.max(1) as u32)
            .unwrap_or_default()
    }
}
