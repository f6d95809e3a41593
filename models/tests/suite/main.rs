//! The models' tests, in one test binary: each links Burn, wgpu and the tokenizers (about 140
//! MB apiece in a dev build), so one binary instead of nine saves CI a gigabyte of disk and
//! eight links. Run one file's tests with `cargo test -p tandem-models --test suite mtcnn::`.

mod bad_inputs;
mod blip;
mod captioning;
mod clip;
mod efficientnet;
mod fetch;
mod hub;
mod minilm;
mod mtcnn;
mod mtcnn_cascade;
mod mtcnn_stages;
mod parity;
mod resize;
mod tiny_model;
mod wgpu_parity;
