//! Burn models with their `ModelHandler`s, for `run_inference` in a `pipeline!`.
//!
//! Burn 0.22 keeps the backend in a runtime `Device`: [`device::select`] turns the pipeline's
//! `--device auto|gpu|cpu` into one (wgpu on a GPU, or the flex CPU backend), and models carry no
//! backend type. Pretrained weights come through pip ([`fetch`]); the models, each matched to an
//! independent NumPy reference on real inputs: [`minilm`] (sentence embeddings),
//! [`efficientnet`] (ImageNet classifiers Lite0/Lite2), the three [`mtcnn`] face-detection
//! networks and the detection cascade around them ([`mtcnn_cascade`]). [`tiny`] is the small
//! deterministic model the inference tests run.

pub mod device;
pub mod efficientnet;
pub mod fetch;
pub mod image_io;
pub mod minilm;
pub mod mtcnn;
pub mod mtcnn_cascade;
pub mod mtcnn_stages;
pub mod tiny;
pub mod weights;
