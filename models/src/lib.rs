//! Burn models with their `ModelHandler`s, for `run_inference` in a `pipeline!`.
//!
//! Burn 0.22 keeps the backend in a runtime `Device`: [`device::select`] turns the pipeline's
//! `--device auto|gpu|cpu` into one (wgpu on a GPU, or the flex CPU backend), and models carry no
//! backend type. Pretrained weights come through pip ([`fetch`]); the models, each matched to an
//! independent NumPy reference on real inputs: [`minilm`] (sentence embeddings),
//! [`efficientnet`] (ImageNet classifiers Lite0/Lite2) and [`mtcnn`] (face detection: three
//! networks and the cascade around them). [`clip`] (caption ranking) and [`blip`] (captioning)
//! load Hugging Face checkpoints from a folder or the hub ([`hub`]) and are matched to
//! transformers itself on seeded random weights of their real architectures, with Pillow's
//! resize reproduced byte for byte ([`resize`]). [`tiny`] is the small deterministic model the
//! inference tests run.
//!
//! Each model family is laid out the same way, one folder per family: `model` (its `Config` and
//! the Burn modules), `weights` (loading the pretrained file), `preprocessing` (inputs to tensors;
//! MiniLM's is its `tokenizer`) and `handler` (the `ModelHandler`); the family module re-exports
//! them (`tandem_models::minilm::MiniLm`). What they share: [`device`], [`fetch`], [`image_io`]
//! (reading an image path into pixels: EfficientNet's and MTCNN's `prepare`) and [`weights`].
//!
//! Errors are one [`Error`], whose messages are the ones a pipeline shows. The handlers' defaults for
//! batching are their `ModelHandler::batching()`; change them with `HandlerExt` (`.max_batch(n)`,
//! in `tandem::prelude`).

pub mod blip;
pub mod clip;
pub mod device;
pub mod efficientnet;
mod error;
pub mod fetch;
mod gelu;
pub mod hub;
pub mod image_io;
pub mod minilm;
pub mod mtcnn;
pub mod resize;
mod simd;
pub mod tiny;
pub mod weights;

pub use error::{BoxError, DeviceError, Error, FetchError, ImageError, Result};
