//! The examples' tests, in one test binary: each links Burn, wgpu and the tokenizers (about 140
//! MB apiece in a dev build), so one binary instead of six saves CI disk and links. Run one
//! file's tests with `cargo test -p tandem-examples --test suite shadow::`.

/// The workspace tests' helpers (`example_binary`, `peak_rss_of`).
#[path = "../../../tests/common/mod.rs"]
mod bins;
mod common;

mod ab_live;
mod ab_test;
mod caption_rank;
mod cascade;
mod image_search;
#[cfg(target_os = "linux")] // peak RSS from /proc
mod model_load;
mod shadow;
