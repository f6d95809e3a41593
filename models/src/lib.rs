//! Burn models with their `ModelHandler`s, for `run_inference` in a `pipeline!`.
//!
//! Burn 0.22 keeps the backend in a runtime `Device`: [`device::select`] turns the pipeline's
//! `--device auto|gpu|cpu` into one (wgpu on a GPU, or the flex CPU backend), and models carry no
//! backend type. The pretrained models (MTCNN, EfficientNet-Lite, MiniLM) arrive with the models
//! issue; [`tiny`] is the small deterministic model the inference tests run.

pub mod device;
pub mod efficientnet;
pub mod fetch;
pub mod minilm;
pub mod tiny;
