//! BLIP's and CLIP's checkpoints in the Hugging Face cache: a folder laid out as `huggingface_hub`
//! leaves it is found (and loads), an incomplete one is not.

use std::path::{Path, PathBuf};

use tandem_models::clip::ClipModel;
use tandem_models::hub::{BLIP, CLIP};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Lays `files` of `from` out in `hub` as the hub's cache does: `models--OWNER--NAME/refs/main`
/// holding a commit hash, the files under `snapshots/HASH/`.
fn cache(hub: &Path, id: &str, from: &Path, files: &[&str]) -> PathBuf {
    let repo = hub.join(format!("models--{}", id.replace('/', "--")));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    for file in files {
        std::fs::copy(from.join(file), snapshot.join(file)).unwrap();
    }
    snapshot
}

#[test]
fn a_checkpoint_in_the_hugging_face_cache_is_found_and_loads() {
    let hub = tempfile::tempdir().unwrap();
    let snapshot = cache(
        hub.path(),
        CLIP.id,
        &fixture("clip-tiny"),
        &["config.json", "model.safetensors"],
    );
    let found = CLIP.cached_in(hub.path()).expect("found in the cache");
    assert_eq!(found, snapshot);
    ClipModel::load(&found, &burn::tensor::Device::flex()).expect("loads");
    assert_eq!(BLIP.cached_in(hub.path()), None, "BLIP is not there");
}

#[test]
fn a_cached_checkpoint_without_its_weights_is_not_found() {
    let hub = tempfile::tempdir().unwrap();
    cache(hub.path(), BLIP.id, &fixture("blip-tiny"), &["config.json"]);
    assert_eq!(BLIP.cached_in(hub.path()), None);
}

#[test]
fn a_given_folder_is_taken_as_it_is() {
    let dir = fixture("blip-tiny");
    assert_eq!(BLIP.folder(Some(&dir)).unwrap(), dir);
}
