//! The MTCNN detection cascade (`tandem_models::mtcnn`) against an independent NumPy
//! port of facenet-pytorch's `detect_face` (`tests/reference/mtcnn_cascade.py`, float64, which
//! reads the same legacy `.pt` weights without torch and wrote `tests/reference/
//! mtcnn_cascade.json`), on real photos: astronaut.png (one face), chelsea.png (a cat: no face),
//! coffee.png (no face), camera.png (grayscale, the cameraman's face) and motorcycle_left.png
//! (two low-confidence false positives, which the reference finds as well). Besides the faces,
//! the number of candidates each stage leaves must be the reference's.
//!
//! Tolerances: the same faces in the same order, boxes and landmarks within 1 pixel, probabilities
//! within 1e-3 on flex; ten times that on wgpu. Plus the handler in a pipeline, where a corrupt
//! image goes to the dead letters alone.

use std::path::PathBuf;

use serde::Deserialize;
use tandem::inference::{DeviceChoice, PredictionResult, Tuned};
use tandem::prelude::*;
use tandem_models::fetch::{self, Asset};
use tandem_models::mtcnn::{Face, Mtcnn};
use tandem_runtime::inference::ModelHandler;

const PHOTOS: [(&str, Asset); 5] = [
    ("astronaut", fetch::ASTRONAUT),
    ("chelsea", fetch::CHELSEA),
    ("coffee", fetch::COFFEE),
    ("camera", fetch::CAMERA),
    ("motorcycle_left", fetch::MOTORCYCLE),
];

#[derive(Deserialize)]
struct Reference {
    weights_sha256: std::collections::BTreeMap<String, String>,
    photos: std::collections::BTreeMap<String, Photo>,
}

#[derive(Deserialize)]
struct Photo {
    photo_sha256: String,
    size: [u32; 2],
    stages: std::collections::BTreeMap<String, usize>,
    faces: Vec<RefFace>,
}

#[derive(Deserialize)]
struct RefFace {
    bbox: [f64; 4],
    probability: f64,
    landmarks: [[f64; 2]; 5],
}

fn reference() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/mtcnn_cascade.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("cannot read {path} ({e}): generate it as the header of mtcnn_cascade.py says")
    });
    let reference: Reference = serde_json::from_str(&text).expect("the reference");
    for (name, asset) in [
        ("pnet", fetch::PNET),
        ("rnet", fetch::RNET),
        ("onet", fetch::ONET),
    ] {
        assert_eq!(
            reference.weights_sha256[name], asset.sha256,
            "the reference was computed from other {name} weights"
        );
    }
    reference
}

fn photo(asset: Asset) -> PathBuf {
    asset.path().unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the handler's model (loaded on `choice`) on the photos and compares with the
/// reference: boxes and landmarks within `pixels`, probabilities within `probability`.
fn check_against_reference(handler: Mtcnn, request: DeviceRequest, pixels: f64, probability: f64) {
    let choice = request.choice;
    let reference = reference();
    let loaded = handler.load(request).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.ids, vec![handler.model_id()]);
    eprintln!("MTCNN loaded on {}", loaded.device);
    assert_eq!(
        loaded.device.starts_with("gpu"),
        choice == DeviceChoice::Gpu,
        "{}",
        loaded.device
    );
    let images: Vec<_> = PHOTOS
        .iter()
        .map(|(name, asset)| {
            let want = &reference.photos[*name];
            assert_eq!(want.photo_sha256, asset.sha256, "{name}: another photo");
            let image = handler.prepare(&photo(*asset)).unwrap();
            assert_eq!(image.dimensions(), (want.size[0], want.size[1]), "{name}");
            assert_eq!(
                loaded
                    .model
                    .scales(image.height() as usize, image.width() as usize)
                    .len(),
                want.stages["scales"],
                "{name}: pyramid"
            );
            image
        })
        .collect();
    let got: Vec<Vec<Face>> = PHOTOS
        .iter()
        .zip(&images)
        .map(|((name, _), image)| {
            let (faces, stages) = loaded.model.detect_counted(image).unwrap();
            let stages = serde_json::to_value(stages).unwrap();
            let want = &reference.photos[*name].stages;
            let stages: std::collections::BTreeMap<String, usize> =
                serde_json::from_value(stages).unwrap();
            assert_eq!(&stages, want, "{name}: candidates per stage");
            faces
        })
        .collect();
    let (mut worst_pixel, mut worst_probability) = (0f64, 0f64);
    for ((name, _), faces) in PHOTOS.iter().zip(&got) {
        let want = &reference.photos[*name];
        eprintln!(
            "{name} ({choice:?}): {} faces (reference stages {:?})",
            faces.len(),
            want.stages
        );
        assert_eq!(
            faces.len(),
            want.faces.len(),
            "{name}: {faces:?} vs the reference's {} faces",
            want.faces.len()
        );
        for (g, w) in faces.iter().zip(&want.faces) {
            eprintln!("  {:?} p={:.6}", g.bbox, g.probability);
            let mut pixel = 0f64;
            for (a, b) in g.bbox.iter().zip(&w.bbox) {
                pixel = pixel.max((f64::from(*a) - b).abs());
            }
            for (a, b) in g.landmarks.iter().zip(&w.landmarks) {
                for k in 0..2 {
                    pixel = pixel.max((f64::from(a[k]) - b[k]).abs());
                }
            }
            let p = (f64::from(g.probability) - w.probability).abs();
            worst_pixel = worst_pixel.max(pixel);
            worst_probability = worst_probability.max(p);
            assert!(
                pixel <= pixels,
                "{name}: {g:?} is {pixel} pixels off the reference's {:?} / {:?}",
                w.bbox,
                w.landmarks
            );
            assert!(
                p <= probability,
                "{name}: probability {} vs {}",
                g.probability,
                w.probability
            );
        }
    }
    eprintln!(
        "{choice:?}: max deviation {worst_pixel:.3e} pixels (boxes, landmarks), {worst_probability:.3e} (probabilities)"
    );
    // The astronaut's face, and nothing in the cat or the coffee.
    let face = &got[0][0];
    let [x1, y1, x2, y2] = face.bbox;
    assert!(
        (160.0..200.0).contains(&x1)
            && (250.0..290.0).contains(&x2)
            && (40.0..80.0).contains(&y1)
            && (150.0..190.0).contains(&y2),
        "{face:?}"
    );
    assert!(face.probability > 0.99);
    for [x, y] in face.landmarks {
        assert!(x > x1 && x < x2 && y > y1 && y < y2, "{face:?}");
    }
    assert!(got[1].is_empty(), "a cat: {:?}", got[1]);
    assert!(got[2].is_empty(), "coffee: {:?}", got[2]);
    assert_eq!(got[3].len(), 1, "the cameraman: {:?}", got[3]);
}

#[test]
fn flex_faces_match_the_numpy_reference() {
    check_against_reference(Mtcnn::new(), DeviceChoice::Cpu.into(), 1.0, 1e-3);
}

type Detection = PredictionResult<PathBuf, Vec<Face>>;

struct Args {
    input: Vec<PathBuf>,
    model: Tuned<Mtcnn>,
    out: Collector<Detection>,
}

pipeline! {
    Detect(args: Args) {
        read(Memory::new(args.input.clone()))
            -> run_inference(args.model.clone())
            -> write(args.out.clone());
    }
}

#[test]
fn the_cascade_runs_in_a_pipeline_and_a_corrupt_image_is_dead_lettered_alone() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.png");
    // A PNG signature and then garbage: the decoder fails on it.
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nthis is not an image at all").unwrap();
    let input = vec![
        photo(fetch::ASTRONAUT),
        photo(fetch::CHELSEA),
        broken.clone(),
        photo(fetch::CAMERA),
        photo(fetch::COFFEE),
    ];
    let args = Args {
        input: input.clone(),
        model: Mtcnn::new().max_batch(2),
        out: Collector::new(),
    };
    let summary = Detect::run_blocking(
        &args,
        &RunConfig {
            device: DeviceChoice::Cpu,
            ..RunConfig::default()
        },
    )
    .unwrap();
    assert!(summary.totals().balanced(), "{summary}");
    let out = args.out.take();
    assert_eq!(out.len(), 4, "{summary}");
    assert_eq!(summary.dead_letters.len(), 1);
    assert_eq!(summary.dead_letters[0].position, 3);
    let reason = &summary.dead_letters[0].error;
    assert!(
        reason.contains("broken.png") && reason.contains("not a decodable image"),
        "{reason}"
    );
    let id = Mtcnn::new().model_id();
    assert!(out.iter().all(|r| *r.model_id == *id));
    assert_eq!(out[0].example, photo(fetch::ASTRONAUT));
    assert_eq!(out[0].inference.len(), 1, "{:?}", out[0].inference);
    assert!(out[0].inference[0].probability > 0.99);
    assert_eq!(out[1].example, photo(fetch::CHELSEA));
    assert!(out[1].inference.is_empty(), "{:?}", out[1].inference);
    // camera.png (grayscale, a man with a camera) is decoded as RGB and searched.
    assert_eq!(out[2].inference.len(), 1, "{:?}", out[2].inference);
    assert!(out[3].inference.is_empty(), "{:?}", out[3].inference);
}

#[test]
fn wgpu_on_the_software_adapter_matches_the_reference() {
    match tandem_models::device::select(
        DeviceRequest::new(DeviceChoice::Gpu).with_software_gpu(true),
    ) {
        Ok(_) => check_against_reference(
            Mtcnn::new(),
            DeviceRequest::new(DeviceChoice::Gpu).with_software_gpu(true),
            1.0,
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
