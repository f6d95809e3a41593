//! `run_inference(handler)`: a model in a pipeline, Beam's RunInference.
//!
//! A [`ModelHandler`] loads a model on a device and turns batches of typed inputs into typed
//! inferences; the stage passes on [`PredictionResult`]s that keep their input and the id of the
//! model that answered. The handler knows nothing of Burn's backend types: it receives a
//! [`DeviceChoice`] and picks the device itself (the `tandem-models` crate does this for Burn), so
//! this crate stays free of Burn.
//!
//! How the stage runs (see `dispatcher`): the segment in front of it pre-processes each input
//! ([`ModelHandler::prepare`]) on its own thread; a dispatcher thread cuts batches (full at
//! `max_batch`, or after `max_wait` once `min_batch` are there) and hands each to the least busy
//! of the model's replicas, each a thread of its own holding a loaded model (a lone replica
//! without a timeout runs on the dispatcher's thread: see `replica::Runner`); results go on in
//! input order to the segment after the stage. So the next batch is prepared and cut while the
//! current one runs on the device. In a run split across several workers of a process, the
//! workers share one dispatcher and its models (`crate::local`): a model is loaded once per process.

mod batcher;
mod dispatcher;
mod front;
mod hot_swap;
mod keyed;
mod reorder;
mod replica;
mod stage;
mod tuned;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::metrics::{Histogram, InferenceMetrics};
pub use front::Front;
pub use keyed::{keyed, Keyed};
pub(crate) use stage::start;
pub use tuned::{HandlerExt, Tuned};

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

/// Where a handler's [`ModelHandler::load`] is asked to put its model: the `--device` choice,
/// and whether `gpu` may be a software adapter (Mesa's lavapipe) where there is no GPU — for
/// testing the wgpu path, never for serving (it is ~20x slower than the CPU backend). The switch
/// is set by [`HandlerExt::allow_software_gpu`] on one stage, or for a whole run by
/// [`RunConfig::software_gpu`](crate::RunConfig::software_gpu) (`TANDEM_SOFTWARE_GPU=1`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DeviceRequest {
    pub choice: DeviceChoice,
    pub software_gpu: bool,
}

impl DeviceRequest {
    /// `choice`, with no software adapter.
    pub fn new(choice: DeviceChoice) -> Self {
        Self {
            choice,
            software_gpu: false,
        }
    }

    /// This request, letting `gpu` take a software adapter when `allowed`.
    pub fn with_software_gpu(self, allowed: bool) -> Self {
        Self {
            software_gpu: allowed,
            ..self
        }
    }
}

impl From<DeviceChoice> for DeviceRequest {
    fn from(choice: DeviceChoice) -> Self {
        Self::new(choice)
    }
}

impl std::fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.choice.fmt(f)
    }
}

/// How a handler wants its inputs batched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    /// The largest batch handed to the model.
    pub max_batch: usize,
    /// The longest the first element of a batch waits for the batch to fill, counted from when it
    /// reached the stage. A batch of at least `min_batch` runs when this has passed.
    pub max_wait: Duration,
    /// The smallest batch run before the input ends: a partial batch waits past `max_wait` until
    /// it has this many elements (the last batch of a run may be smaller). 1 by default.
    pub min_batch: usize,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            max_batch: 32,
            max_wait: Duration::from_millis(20),
            min_batch: 1,
        }
    }
}

/// How a stage serves a model, beside its batching: replicas, a time limit per batch, and a
/// weights file to watch. Set it with [`HandlerExt`] (`handler.replicas(2).timeout(..)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serving {
    /// Copies of the model, each on a thread of its own; a batch goes to the least busy.
    pub replicas: usize,
    /// A batch that has not come back after this long is given up: its elements go to the dead
    /// letters with the reason, and the replica running it is replaced by a freshly loaded one.
    pub timeout: Option<Duration>,
    /// A weights file to watch: when it changes, the model is loaded again beside the running one
    /// and swapped in; results carry the new model's id from then on (hot swap).
    pub watch: Option<PathBuf>,
    /// How often the watched file is looked at.
    pub poll: Duration,
    /// Lets `--device gpu` load this stage's model on a software adapter (see [`DeviceRequest`]).
    pub software_gpu: bool,
}

impl Default for Serving {
    fn default() -> Self {
        Self {
            replicas: 1,
            timeout: None,
            watch: None,
            poll: Duration::from_millis(100),
            software_gpu: false,
        }
    }
}

/// A loaded model, the device it is on (for the summary), and the id its results carry.
pub struct Loaded<M> {
    pub model: M,
    pub device: String,
    /// One id per group (see [`ModelHandler::group`]); one for an ordinary handler. Make it
    /// change with the weights (a version, a hash) so results say which weights answered.
    pub ids: Vec<String>,
}

impl<M> Loaded<M> {
    pub fn new(model: M, device: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            model,
            device: device.into(),
            ids: vec![id.into()],
        }
    }
}

/// A model the pipeline can run: `run_inference(handler)`.
///
/// The handler is shared by the threads of the stage, so a stage needs it `Send + Sync` (checked
/// at the stage, see [`SharedHandler`]): `prepare` runs on the thread of the
/// segment in front of the stage, `infer` on the replicas' threads, each with its own model.
#[diagnostic::on_unimplemented(
    message = "`run_inference` takes a model handler, but `{Self}` is not one",
    label = "not a `ModelHandler`",
    note = "implement `tandem::inference::ModelHandler` for it (name, load, prepare, infer), or use a handler from `tandem-models`"
)]
pub trait ModelHandler: 'static {
    /// What the stage receives.
    type Input: Send;
    /// One input turned into what the model takes (pre-processing, on the CPU).
    type Prepared: Send + 'static;
    /// What the model says about one input.
    type Inference: Send + 'static;
    /// A loaded model.
    type Model: Send + 'static;

    /// The model's name, for logs and metrics (the id its results carry comes from [`Loaded`]).
    fn name(&self) -> String;

    fn batching(&self) -> Batching {
        Batching::default()
    }

    fn serving(&self) -> Serving {
        Serving::default()
    }

    /// Loads the model on the chosen device: once per replica before the pipeline reads
    /// anything, again for a replica that replaces a timed-out one, and when a watched weights
    /// file changes.
    fn load(&self, device: DeviceRequest) -> Result<Loaded<Self::Model>, String>;

    /// Pre-processes one input. An error sends that input alone to the dead letters.
    fn prepare(&self, input: &Self::Input) -> Result<Self::Prepared, String>;

    /// Which of the handler's models takes this input (keyed models, [`keyed`]); batches hold
    /// inputs of one group only. 0 for an ordinary handler.
    fn group(&self, _prepared: &Self::Prepared) -> usize {
        0
    }

    /// Runs the model on a batch; must return one inference per input, in order. An error (or a
    /// panic) sends the batch's elements to the dead letters and the run goes on.
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

/// A model handler the threads of a stage can share: what the engine runs. Every `Send + Sync`
/// [`ModelHandler`] is one; `run_inference` checks it at the stage, so a handler holding an `Rc`
/// is reported there, once.
pub trait SharedHandler: ModelHandler + Send + Sync {}
impl<H: ModelHandler + Send + Sync> SharedHandler for H {}
