//! The BLIP and CLIP tests' checkpoints and references: the small committed ones
//! (`tests/fixtures/{blip,clip}-tiny`, `tests/reference/{blip,clip}.json`), or the full-size
//! ones in `$TANDEM_CAPTION_REFERENCE` (`DIR/{blip,clip}`, `DIR/{blip,clip}.json`: what
//! `models/tests/reference/captioning.py --full DIR` writes).

use std::path::{Path, PathBuf};

fn full_size() -> Option<PathBuf> {
    std::env::var_os("TANDEM_CAPTION_REFERENCE").map(PathBuf::from)
}

/// The checkpoint folder of `model` ("blip" or "clip").
pub fn checkpoint(model: &str) -> PathBuf {
    match full_size() {
        Some(dir) => dir.join(model),
        None => small_checkpoint(model),
    }
}

/// The small committed checkpoint of `model`, whatever the environment says.
pub fn small_checkpoint(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{model}-tiny"))
}

/// The reference outputs of `model`, parsed.
pub fn reference<T: serde::de::DeserializeOwned>(model: &str) -> T {
    let path = match full_size() {
        Some(dir) => dir.join(format!("{model}.json")),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/reference/{model}.json")),
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
