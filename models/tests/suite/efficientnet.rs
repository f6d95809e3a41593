//! EfficientNet-Lite0 and Lite2 on real photos (scikit-image's samples), against the independent
//! NumPy port of the upstream forward pass in `tests/reference/efficientnet.py`, whose outputs are
//! committed in `tests/reference/efficientnet.json` (its header says how to regenerate them).
//!
//! The measure: per model and photo, `max_i |burn_i - ref_i| / max_i |ref_i|` over the 1000 logits
//! (the largest error relative to the largest logit), under 1e-4 on flex and 1e-3 on wgpu. The
//! reference ran on exactly the inputs the Rust preprocessing makes here: their sha256 is in the
//! JSON and checked first, so a change in preprocessing shows up as such and not as a model error.
//!
//! `TANDEM_EFFICIENTNET_DUMP=DIR` makes `flex_logits_match_the_numpy_reference` write those inputs
//! (`DIR/<model>-<photo>.f32`, CHW little-endian f32) for the script.
//!
//! The preprocessing has its own reference: TensorFlow running upstream's evaluation functions
//! (`tests/reference/efficientnet_preprocess.py`, `efficientnet_preprocess.json`). The Rust
//! inputs are TensorFlow's bit for bit on the five photos (largest difference seen: 0); the test
//! checks the sampled values within 1e-5, the sums, then the sha256 of the whole input. The NumPy
//! reference records that its inputs were TensorFlow's (`input_is_tensorflows`), so its logits
//! are those of the upstream pipeline.

use crate::parity::relative_error;
use std::collections::HashMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use tandem::inference::{DeviceChoice, PredictionResult, Tuned};
use tandem::prelude::*;
use tandem_models::efficientnet::{
    crop_side, imagenet_labels, prepare_rgb, Classification, EfficientNet, EfficientNetLite,
    Variant, CLASSES,
};
use tandem_models::fetch::{self, Asset};
use tandem_models::image_io::decode_rgb;
use tandem_runtime::inference::ModelHandler;

const PHOTOS: [(&str, Asset); 5] = [
    ("chelsea", fetch::CHELSEA),
    ("coffee", fetch::COFFEE),
    ("astronaut", fetch::ASTRONAUT),
    ("motorcycle", fetch::MOTORCYCLE),
    ("camera", fetch::CAMERA),
];

struct Reference {
    input_sha256: String,
    top5: Vec<usize>,
    logits: Vec<f32>,
}

fn reference() -> HashMap<(String, String), Reference> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/efficientnet.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("cannot read {path} ({e}): generate it as the header of efficientnet.py says")
    });
    let json: serde_json::Value = serde_json::from_str(&text).expect("the reference is JSON");
    let mut out = HashMap::new();
    for (model, photos) in json["models"].as_object().expect("models") {
        for (photo, entry) in photos.as_object().expect("photos") {
            let numbers = |key: &str| -> Vec<f64> {
                entry[key]
                    .as_array()
                    .unwrap_or_else(|| panic!("{model} {photo}: no {key}"))
                    .iter()
                    .map(|v| v.as_f64().expect("a number"))
                    .collect()
            };
            out.insert(
                (model.clone(), photo.clone()),
                Reference {
                    input_sha256: entry["input_sha256"].as_str().expect("sha").to_owned(),
                    top5: numbers("top5").into_iter().map(|v| v as usize).collect(),
                    logits: numbers("logits").into_iter().map(|v| v as f32).collect(),
                },
            );
        }
    }
    out
}

fn photo(asset: Asset) -> PathBuf {
    asset.path().unwrap_or_else(|e| panic!("{e}"))
}

/// The inputs the handler prepares, one per photo.
fn prepared(handler: &EfficientNetLite, photos: &[(&str, Asset)]) -> Vec<Vec<f32>> {
    photos
        .iter()
        .map(|(name, asset)| {
            handler
                .prepare(&photo(*asset))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        })
        .collect()
}

/// With `TANDEM_EFFICIENTNET_DUMP=DIR`, writes the prepared inputs for the reference script.
fn dump_inputs_if_asked() {
    let Some(dir) = std::env::var_os("TANDEM_EFFICIENTNET_DUMP") else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    for variant in [Variant::Lite0, Variant::Lite2] {
        let inputs = prepared(&EfficientNetLite::new(variant), &PHOTOS);
        for ((name, _), input) in PHOTOS.iter().zip(&inputs) {
            let file = PathBuf::from(&dir).join(format!("{}-{name}.f32", variant.name()));
            std::fs::write(&file, sha256_of(input).0).unwrap();
        }
    }
    eprintln!("wrote the inputs to {}", dir.to_string_lossy());
}

fn sha256_of(input: &[f32]) -> (Vec<u8>, String) {
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    let hash = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (bytes, hash)
}

/// Loads the model on `device` and runs the inputs one batch through the handler's `infer`.
fn classify(
    handler: &EfficientNetLite,
    request: DeviceRequest,
    inputs: Vec<Vec<f32>>,
) -> Vec<Classification> {
    let mut loaded = handler.load(request).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.ids, vec![handler.model_id()]);
    eprintln!("{} loaded on {}", handler.variant.name(), loaded.device);
    let on_gpu = loaded.device.starts_with("gpu");
    assert_eq!(
        on_gpu,
        request.choice == DeviceChoice::Gpu,
        "{}",
        loaded.device
    );
    handler.infer(&mut loaded.model, inputs).unwrap()
}

fn check_against_reference(
    variant: Variant,
    photos: &[(&str, Asset)],
    request: DeviceRequest,
    handler: EfficientNetLite,
    tolerance: f64,
) {
    let inputs = prepared(&handler, photos);
    let reference = reference();
    let want: Vec<&Reference> = photos
        .iter()
        .zip(&inputs)
        .map(|((name, _), input)| {
            let key = (variant.name().to_owned(), (*name).to_owned());
            let want = reference
                .get(&key)
                .unwrap_or_else(|| panic!("no reference for {key:?}"));
            assert_eq!(
                sha256_of(input).1,
                want.input_sha256,
                "{key:?}: the preprocessed input differs from the one the reference ran on; regenerate the reference"
            );
            want
        })
        .collect();
    let got = classify(&handler, request, inputs);
    let choice = request.choice;
    for (((name, _), got), want) in photos.iter().zip(&got).zip(want) {
        let error = relative_error(&got.logits, &want.logits);
        let top: Vec<usize> = got.top.iter().map(|c| c.index).collect();
        eprintln!(
            "{} {name} ({choice:?}): max relative error {error:.3e}, top-1 {} {:?} ({:.3})",
            variant.name(),
            got.top[0].index,
            got.top[0].label,
            got.top[0].probability
        );
        assert!(
            error < tolerance,
            "{} {name}: logits differ from the reference by {error:e} (relative)",
            variant.name()
        );
        assert_eq!(got.logits.len(), CLASSES);
        assert_eq!(top[0], want.top5[0], "{} {name}: top-1", variant.name());
    }
}

#[test]
fn flex_logits_match_the_numpy_reference() {
    dump_inputs_if_asked();
    for variant in [Variant::Lite0, Variant::Lite2] {
        check_against_reference(
            variant,
            &PHOTOS,
            DeviceChoice::Cpu.into(),
            EfficientNetLite::new(variant),
            1e-4,
        );
    }
}

#[test]
fn the_labels_make_sense() {
    let labels = imagenet_labels().unwrap();
    assert_eq!(labels.len(), 1000);
    assert!(labels[281].starts_with("tabby"), "{}", labels[281]);
    for variant in [Variant::Lite0, Variant::Lite2] {
        let handler = EfficientNetLite::new(variant);
        let photos = [("chelsea", fetch::CHELSEA), ("coffee", fetch::COFFEE)];
        let got = classify(
            &handler,
            DeviceChoice::Cpu.into(),
            prepared(&handler, &photos),
        );
        let cat = &got[0].top[0].label;
        assert!(
            ["tabby", "tiger cat", "Egyptian cat"]
                .iter()
                .any(|c| cat.starts_with(c)),
            "{}: chelsea is a cat, not {cat}",
            variant.name()
        );
        let coffee = &got[1].top[0].label;
        assert!(
            ["espresso", "cup", "coffee mug"]
                .iter()
                .any(|c| coffee.starts_with(c)),
            "{}: coffee is not {coffee}",
            variant.name()
        );
        for c in &got[0].top {
            assert!(c.probability > 0.0 && c.probability <= 1.0);
        }
        assert!(got[0]
            .top
            .windows(2)
            .all(|w| w[0].probability >= w[1].probability));
    }
}

#[test]
fn a_grayscale_photo_is_converted_not_rejected() {
    let handler = EfficientNetLite::lite0();
    let input = handler.prepare(&photo(fetch::CAMERA)).unwrap();
    let plane = 224 * 224;
    assert_eq!(input.len(), 3 * plane);
    assert_eq!(input[..plane], input[plane..2 * plane]);
    assert_eq!(input[..plane], input[2 * plane..]);
    assert!(input.iter().all(|v| (-1.0..=1.0).contains(v)));
}

#[test]
fn the_inputs_are_tensorflows_upstream_evaluation_preprocessing() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/efficientnet_preprocess.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let json: serde_json::Value = serde_json::from_str(&text).expect("the reference is JSON");
    let mut worst = 0f32;
    for variant in [Variant::Lite0, Variant::Lite2] {
        let size = variant.input_size();
        for (name, asset) in PHOTOS {
            let want = &json["models"][variant.name()][name];
            let key = format!("{} {name}", variant.name());
            let rgb = decode_rgb(&std::fs::read(photo(asset)).unwrap()).unwrap();
            let got = prepare_rgb(&rgb, size);
            assert_eq!(got.len(), 3 * size * size, "{key}");
            let shorter = rgb.width().min(rgb.height()) as usize;
            let window: Vec<u64> = want["crop_window"]
                .as_array()
                .expect("crop_window")
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(
                window[2] as usize,
                crop_side(size, shorter),
                "{key}: the crop's side (window {window:?})"
            );
            let indices = want["sample_indices"].as_array().expect("indices");
            let values = want["samples"].as_array().expect("samples");
            for (i, v) in indices.iter().zip(values) {
                // The JSON holds f32 values written exactly; compared as f32 (serde_json's
                // parsing may be off by an f64 ulp, which rounding to f32 removes).
                let (i, v) = (i.as_u64().unwrap() as usize, v.as_f64().unwrap() as f32);
                let diff = (got[i] - v).abs();
                worst = worst.max(diff);
                assert!(diff <= 1e-5, "{key}: value {i} is {} not {v}", got[i]);
            }
            let sum: f64 = got.iter().map(|&v| f64::from(v)).sum();
            let squares: f64 = got.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            for (what, got, want) in [
                ("sum", sum, want["sum"].as_f64().unwrap()),
                (
                    "sum of squares",
                    squares,
                    want["sum_of_squares"].as_f64().unwrap(),
                ),
            ] {
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{key}: {what} {got} not {want}"
                );
            }
            assert_eq!(
                sha256_of(&got).1,
                want["sha256"].as_str().unwrap(),
                "{key}: close to TensorFlow's input but not bit for bit"
            );
        }
    }
    eprintln!("largest difference from TensorFlow on the sampled values: {worst:e} (and the sha256 of every input is TensorFlow's)");
}

type Prediction = PredictionResult<PathBuf, Classification>;

struct Args {
    input: Vec<PathBuf>,
    model: Tuned<EfficientNetLite>,
    out: Collector<Prediction>,
}

pipeline! {
    Classify(args: Args) {
        read(Memory::new(args.input.clone()))
            -> run_inference(args.model.clone())
            -> write(args.out.clone());
    }
}

#[test]
fn both_models_run_in_a_pipeline_and_a_corrupt_image_is_dead_lettered_alone() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.png");
    // A PNG signature and then garbage: the decoder fails on it.
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nthis is not an image at all").unwrap();
    let input = vec![
        photo(fetch::CHELSEA),
        photo(fetch::CAMERA),
        broken.clone(),
        photo(fetch::COFFEE),
    ];
    for variant in [Variant::Lite0, Variant::Lite2] {
        let args = Args {
            input: input.clone(),
            model: EfficientNetLite::new(variant).max_batch(2),
            out: Collector::new(),
        };
        let summary = Classify::run_blocking(
            &args,
            &RunConfig {
                device: DeviceChoice::Cpu,
                ..RunConfig::default()
            },
        )
        .unwrap();
        assert!(summary.totals().balanced(), "{summary}");
        let out = args.out.take();
        assert_eq!(out.len(), 3, "{summary}");
        assert_eq!(summary.dead_letters.len(), 1);
        assert_eq!(summary.dead_letters[0].position, 3);
        let reason = &summary.dead_letters[0].error;
        assert!(
            reason.contains("broken.png") && reason.contains("not a decodable image"),
            "{reason}"
        );
        let ids: Vec<&str> = out.iter().map(|r| &*r.model_id).collect();
        let id = EfficientNetLite::new(variant).model_id();
        assert!(ids.iter().all(|i| *i == id), "{ids:?}");
        assert!(id.len() == variant.name().len() + 9);
        assert_eq!(out[0].example, photo(fetch::CHELSEA));
        assert!(
            out[0].inference.top[0].label.contains("cat"),
            "{:?}",
            out[0].inference.top
        );
        assert_eq!(out[0].inference.top.len(), 5);
        eprintln!(
            "{}: camera -> {:?}",
            variant.name(),
            out[1].inference.top[0].label
        );
    }
}

#[test]
fn missing_weights_say_which_file() {
    let error = EfficientNet::load(
        Variant::Lite0,
        std::path::Path::new("/nonexistent/efficientnet-lite0.pth"),
        &burn::tensor::Device::flex(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("/nonexistent/efficientnet-lite0.pth"),
        "{error}"
    );
}

#[test]
fn wgpu_on_the_software_adapter_matches_the_reference() {
    // Opens the adapter once (the handler's `load` then finds it in the same cache).
    match tandem_models::device::select(
        DeviceRequest::new(DeviceChoice::Gpu).with_software_gpu(true),
    ) {
        Ok(_) => check_against_reference(
            Variant::Lite0,
            &PHOTOS[..1],
            DeviceRequest::new(DeviceChoice::Gpu).with_software_gpu(true),
            EfficientNetLite::lite0(),
            1e-3,
        ),
        Err(error) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs a Vulkan driver, yet: {error}"
            );
            eprintln!("wgpu not checked here: {error}");
        }
    }
}
