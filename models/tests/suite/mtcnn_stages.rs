//! The staged cascade (`tandem_models::mtcnn`'s `PNetStage`, `RNetStage`, `ONetStage`: a model
//! handler per network, the box arithmetic between them as plain functions) finds the same faces
//! as the one-piece `Detector` (itself matched to the NumPy reference in `mtcnn_cascade.rs`), on
//! real photos, with several images per batch: R-Net and O-Net then run the crops of all of them
//! as one tensor. The candidates left after each stage must be the `Detector`'s too.

use tandem::inference::{DeviceChoice, ModelHandler, PredictionResult};
use tandem_models::fetch::{self, Asset};
use tandem_models::mtcnn::{
    faces, onet_faces, proposals, refine, Detector, Face, Frame, MtcnnConfig, ONetStage, PNetStage,
    Proposals, RNetStage,
};

/// The astronaut (one face), a cat (none), the cameraman (grayscale, one face) and a motorcycle
/// (two low-confidence false positives, which the NumPy reference finds as well).
const PHOTOS: [Asset; 4] = [
    fetch::ASTRONAUT,
    fetch::CHELSEA,
    fetch::CAMERA,
    fetch::MOTORCYCLE,
];

/// Runs a handler on a whole batch, as its stage would, and pairs each result with its input.
fn run<H: ModelHandler>(
    handler: &H,
    inputs: Vec<H::Input>,
) -> Vec<PredictionResult<H::Input, H::Inference>>
where
    H::Input: Clone,
{
    let mut loaded = handler
        .load(DeviceChoice::Cpu.into())
        .unwrap_or_else(|e| panic!("{e}"));
    let id: std::sync::Arc<str> = loaded.ids[0].as_str().into();
    let prepared = inputs.iter().map(|i| handler.prepare(i).unwrap()).collect();
    let out = handler.infer(&mut loaded.model, prepared).unwrap();
    assert_eq!(out.len(), inputs.len());
    inputs
        .into_iter()
        .zip(out)
        .map(|(example, inference)| PredictionResult {
            example,
            inference,
            model_id: id.clone(),
        })
        .collect()
}

fn worst(a: &Face, b: &Face) -> (f32, f32) {
    let mut pixel = 0f32;
    for (x, y) in a.bbox.iter().zip(&b.bbox) {
        pixel = pixel.max((x - y).abs());
    }
    for (p, q) in a.landmarks.iter().zip(&b.landmarks) {
        for k in 0..2 {
            pixel = pixel.max((p[k] - q[k]).abs());
        }
    }
    (pixel, (a.probability - b.probability).abs())
}

#[test]
fn the_staged_cascade_finds_the_detectors_faces_with_batches_across_images() {
    let settings = MtcnnConfig::default();
    let frames: Vec<Frame> = PHOTOS
        .iter()
        .map(|asset| Frame::open(&asset.path().unwrap_or_else(|e| panic!("{e}"))).unwrap())
        .collect();

    let after_pnet: Vec<Proposals> = run(&PNetStage::new(settings), frames.clone())
        .into_iter()
        .map(proposals)
        .collect();
    let after_rnet: Vec<Proposals> = run(&RNetStage::new(), after_pnet.clone())
        .into_iter()
        .map(|p| refine(p, &settings))
        .collect();
    let onet = run(&ONetStage::new(), after_rnet.clone());
    let passed: Vec<usize> = onet
        .iter()
        .map(|p| onet_faces(p.inference.clone(), settings.thresholds[2]).1)
        .collect();
    let staged: Vec<_> = onet.into_iter().map(|p| faces(p, &settings)).collect();

    let detector =
        Detector::pretrained(&tandem_models::device::select(DeviceChoice::Cpu).unwrap().0)
            .unwrap_or_else(|e| panic!("{e}"));
    let (mut worst_pixel, mut worst_probability) = (0f32, 0f32);
    for (i, frame) in frames.iter().enumerate() {
        let name = frame.path.file_name().unwrap().to_string_lossy();
        let (want, stages) = detector.detect_counted(&frame.image).unwrap();
        assert_eq!(
            after_pnet[i].boxes.len(),
            stages.pnet_nms,
            "{name}: after P-Net"
        );
        if stages.pnet_nms > 0 {
            assert_eq!(
                after_rnet[i].boxes.len(),
                stages.rnet,
                "{name}: after R-Net"
            );
        }
        if stages.rnet > 0 {
            assert_eq!(passed[i], stages.onet, "{name}: after O-Net");
        }
        let got = &staged[i].faces;
        eprintln!(
            "{name}: {} faces staged, {} in one piece",
            got.len(),
            want.len()
        );
        assert_eq!(got.len(), want.len(), "{name}: {got:?} vs {want:?}");
        for (g, w) in got.iter().zip(&want) {
            let (pixel, probability) = worst(g, w);
            worst_pixel = worst_pixel.max(pixel);
            worst_probability = worst_probability.max(probability);
        }
        assert_eq!(staged[i].frame.path, frame.path);
    }
    eprintln!("max deviation: {worst_pixel:.2e} pixels, {worst_probability:.2e} in probability");
    assert!(worst_pixel <= 1e-3, "{worst_pixel} pixels");
    assert!(worst_probability <= 1e-5, "{worst_probability}");
    assert_eq!(staged[0].faces.len(), 1, "the astronaut");
    assert!(staged[1].faces.is_empty(), "a cat");
    assert_eq!(staged[2].faces.len(), 1, "the cameraman");
}
