//! `examples/caption_rank.rs` end to end on the CPU, with the small random-weight BLIP and CLIP
//! checkpoints of models/tests/fixtures (transformers' own architectures; see
//! models/tests/reference/captioning.py): the candidates of each image are BLIP's beam-search
//! captions as transformers wrote them, CLIP ranks them (scores summing to 1, best first), a
//! corrupt image goes to the dead letters alone, sampling with a seed gives the same ranking
//! twice, and without weights the binary stops at start-up with the paragraph naming both
//! checkpoints.

#[allow(dead_code)]
#[path = "../../caption_rank.rs"]
mod example;

use crate::{bins, common};

use std::path::{Path, PathBuf};
use std::process::Command;

use example::{CaptionArgs, CaptionRank, Writing};
use tandem_models::fetch;

fn photo(asset: fetch::Asset) -> PathBuf {
    asset.path().unwrap_or_else(|e| panic!("{e}"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/tests/fixtures")
        .join(name)
}

fn args(dir: &Path, images: Vec<PathBuf>, method: Writing, file: &str) -> CaptionArgs {
    CaptionArgs {
        images,
        blip: Some(fixture("blip-tiny")),
        clip: Some(fixture("clip-tiny")),
        candidates: 3,
        method,
        top_p: 0.9,
        seed: 7,
        max_new_tokens: 12,
        captions: dir.join(file),
    }
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The captions of one line, with their scores and logits.
fn captions(line: &serde_json::Value) -> Vec<(String, f64, f64)> {
    line["captions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["caption"].as_str().unwrap().to_owned(),
                c["score"].as_f64().unwrap(),
                c["logit"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn blip_writes_the_reference_beams_clip_ranks_them_and_a_broken_image_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot an image").unwrap();
    let images = vec![photo(fetch::CHELSEA), broken, photo(fetch::ASTRONAUT)];
    let args = args(dir.path(), images, Writing::Beam, "captions.jsonl");
    let summary = common::run_on_cpu::<CaptionRank>(&args);
    assert_eq!(summary.dead_letters.len(), 1, "{summary}");
    assert!(
        summary.dead_letters[0].error.contains("broken.png"),
        "{}",
        summary.dead_letters[0].error
    );

    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/reference/blip.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let names: Vec<&str> = reference["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let out = lines(&args.captions);
    assert_eq!(out.len(), 2);
    for line in &out {
        let image = PathBuf::from(line["image"].as_str().unwrap());
        let name = image.file_name().unwrap().to_str().unwrap();
        let at = names.iter().position(|n| *n == name).unwrap();
        let mut expected: Vec<String> = reference["beam"]["texts"][at]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        expected.sort();
        expected.dedup();
        let got = captions(line);
        let mut texts: Vec<String> = got.iter().map(|c| c.0.clone()).collect();
        texts.sort();
        assert_eq!(
            texts, expected,
            "{name}: BLIP's beams, as transformers wrote them"
        );
        let total: f64 = got.iter().map(|c| c.1).sum();
        assert!((total - 1.0).abs() < 1e-5, "{name}: scores sum to {total}");
        assert!(
            got.windows(2).all(|w| w[0].2 >= w[1].2),
            "{name}: best first: {got:?}"
        );
        assert_eq!(line["blip"], "blip-blip-tiny");
        assert_eq!(line["clip"], "clip-clip-tiny");
    }
}

#[test]
fn sampled_candidates_with_a_seed_are_ranked_the_same_twice() {
    let dir = tempfile::tempdir().unwrap();
    let images = vec![photo(fetch::COFFEE), photo(fetch::CAMERA)];
    let first = args(dir.path(), images.clone(), Writing::Nucleus, "a.jsonl");
    let second = args(dir.path(), images, Writing::Nucleus, "b.jsonl");
    common::run_on_cpu::<CaptionRank>(&first);
    common::run_on_cpu::<CaptionRank>(&second);
    let (a, b) = (lines(&first.captions), lines(&second.captions));
    assert_eq!(a, b);
    assert_eq!(a.len(), 2);
    for line in &a {
        let got = captions(line);
        assert!(!got.is_empty() && got.len() <= 3, "{line}");
        assert!(
            got.iter().all(|c| c.0.starts_with("a picture of")),
            "{line}"
        );
    }
}

#[test]
fn without_weights_it_stops_at_start_up_naming_both_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bins::example_binary("caption_rank"))
        .args(["--device", "cpu"])
        .arg("--captions")
        .arg(dir.path().join("captions.jsonl"))
        .arg(photo(fetch::CHELSEA))
        // An empty Hugging Face cache, and a hub that refuses connections.
        .env("HF_HOME", dir.path().join("hf"))
        .env("HF_ENDPOINT", "http://127.0.0.1:1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for needed in [
        "Salesforce/blip-image-captioning-base",
        "openai/clip-vit-base-patch32",
        "config.json",
        "model.safetensors",
        "--blip DIR --clip DIR",
        "fetch_models -- --hub",
    ] {
        assert!(stderr.contains(needed), "missing {needed:?} in: {stderr}");
    }
    assert!(!dir.path().join("captions.jsonl").exists());
}
