//! The MTCNN face-detection cascade around [`crate::mtcnn`]'s three networks, ported from
//! facenet-pytorch 2.6.0 (`facenet_pytorch/models/utils/detect_face.py: detect_face`, with the
//! defaults of its `MTCNN`: minimum face size 20, thresholds 0.6 / 0.7 / 0.7, pyramid factor
//! 0.709), and [`Mtcnn`], its [`ModelHandler`] (an image path in, the faces found out).
//!
//! The cascade, per image, as upstream:
//! 1. a pyramid of scales `12 / min_size * factor^k` while the shorter side times the scale is at
//!    least 12; each scale resized to `(int(h * s + 1), int(w * s + 1))` in torch's `area` mode
//!    (adaptive average pooling: output pixel `i` averages the source pixels
//!    `floor(i * in / out) .. ceil((i + 1) * in / out)`), normalised `(x - 127.5) * 0.0078125`;
//! 2. P-Net on each scale; the cells with face probability >= 0.6 become boxes
//!    `floor((2 * cell + 1) / s) .. floor((2 * cell + 12) / s)` (`generateBoundingBox`); NMS 0.5
//!    per scale, then NMS 0.7 over all; the regression (scaled by `x2 - x1`, no +1); `rerec`
//!    (squared around the centre);
//! 3. each box truncated and clamped into the image (`pad`), the part inside the image cropped
//!    (no zero padding, as upstream), area-resized to 24x24, R-Net; probability > 0.7; NMS 0.7;
//!    `bbreg` (scaled by `x2 - x1 + 1`); `rerec`;
//! 4. the same with 48x48 crops and O-Net (> 0.7); the five landmarks from the box before the
//!    regression (`w * l + x1 - 1`); `bbreg`; a last NMS 0.7 measuring the overlap against the
//!    smaller box ('Min', areas with +1).
//!
//! NMS is torchvision's (by decreasing probability, IoU > threshold suppressed; ties keep the
//! earlier box). The faces come out in decreasing probability (upstream's `detect_face` order;
//! `MTCNN.detect`'s `select_largest` reordering is not applied). One deviation: a box whose crop
//! lies entirely outside the image is dropped (upstream drops the crop but keeps the box, which
//! misaligns boxes and network outputs).
//!
//! The box arithmetic is in f64, the networks and resizing in f32. Matched against an
//! independent NumPy port (`models/tests/reference/mtcnn_cascade.py`) on real photos:
//! `models/tests/mtcnn_cascade.rs`.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;
use tandem_runtime::inference::{Batching, DeviceChoice, Loaded, ModelHandler};

use crate::mtcnn::{normalize, ONet, PNet, RNet, ONET_SIZE, RNET_SIZE};

/// One face found: its box, O-Net's probability and five landmarks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Face {
    /// `[x1, y1, x2, y2]` in pixels of the image.
    pub bbox: [f32; 4],
    /// O-Net's face probability.
    pub probability: f32,
    /// `(x, y)` of the left eye, right eye, nose, left and right mouth corner (as upstream
    /// orders them), in pixels of the image.
    pub landmarks: [[f32; 2]; 5],
}

/// The cascade's settings (upstream `MTCNN`'s defaults by [`Settings::default`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// The smallest face searched for, in pixels (20).
    pub min_face_size: f64,
    /// The probability thresholds of P-Net, R-Net and O-Net (0.6, 0.7, 0.7).
    pub thresholds: [f64; 3],
    /// The pyramid's scale factor (0.709).
    pub factor: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            min_face_size: 20.0,
            thresholds: [0.6, 0.7, 0.7],
            factor: 0.709,
        }
    }
}

/// An RGB image as three planes of f32 in 0..=255.
struct Planes {
    data: Vec<f32>,
    w: usize,
    h: usize,
}

impl Planes {
    fn new(image: &image::RgbImage) -> Self {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut data = vec![0f32; 3 * w * h];
        for (i, pixel) in image.pixels().enumerate() {
            for c in 0..3 {
                data[c * w * h + i] = f32::from(pixel[c]);
            }
        }
        Self { data, w, h }
    }

    /// The region rows `y0..y1`, columns `x0..x1`, resized to `oh x ow` in torch's `area` mode
    /// and normalised, channels first, appended to `out`.
    fn area_resize_into(
        &self,
        (y0, y1): (usize, usize),
        (x0, x1): (usize, usize),
        oh: usize,
        ow: usize,
        out: &mut Vec<f32>,
    ) {
        let (ih, iw) = (y1 - y0, x1 - x0);
        let window = |i: usize, n_in: usize, n_out: usize| {
            (i * n_in / n_out, ((i + 1) * n_in).div_ceil(n_out))
        };
        let cols: Vec<(usize, usize)> = (0..ow).map(|j| window(j, iw, ow)).collect();
        for c in 0..3 {
            let plane = &self.data[c * self.w * self.h..(c + 1) * self.w * self.h];
            for i in 0..oh {
                let (r0, r1) = window(i, ih, oh);
                for &(c0, c1) in &cols {
                    let mut sum = 0f64;
                    for r in r0..r1 {
                        let row = (y0 + r) * self.w + x0;
                        for v in &plane[row + c0..row + c1] {
                            sum += f64::from(*v);
                        }
                    }
                    let mean = sum / ((r1 - r0) * (c1 - c0)) as f64;
                    out.push(normalize(mean as f32));
                }
            }
        }
    }
}

/// How many candidates each stage of one [`Detector::detect_counted`] left (for tests and
/// tuning): pyramid scales, P-Net boxes after the per-scale NMS and after the NMS over all scales,
/// boxes after R-Net (and its NMS), after O-Net (before the last NMS), and faces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stages {
    pub scales: usize,
    pub pnet: usize,
    pub pnet_nms: usize,
    pub rnet: usize,
    pub onet: usize,
    pub faces: usize,
}

/// A candidate box: corners, probability and the network's regression.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    b: [f64; 4],
    score: f64,
    reg: [f64; 4],
}

/// Indices in decreasing score, stable.
fn by_score(c: &[Candidate]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..c.len()).collect();
    order.sort_by(|&i, &j| c[j].score.total_cmp(&c[i].score));
    order
}

/// torchvision's `nms`: the kept candidates, by decreasing score.
fn nms(c: &[Candidate], threshold: f64) -> Vec<Candidate> {
    let area = |b: &[f64; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    let mut suppressed = vec![false; c.len()];
    let mut keep = Vec::new();
    let order = by_score(c);
    for (a, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(c[i]);
        let bi = &c[i].b;
        for &j in &order[a + 1..] {
            if suppressed[j] {
                continue;
            }
            let bj = &c[j].b;
            let w = (bi[2].min(bj[2]) - bi[0].max(bj[0])).max(0.0);
            let h = (bi[3].min(bj[3]) - bi[1].max(bj[1])).max(0.0);
            let inter = w * h;
            if inter / (area(bi) + area(bj) - inter) > threshold {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// Upstream's `nms_numpy(..., 'Min')`: the kept indices, by decreasing score.
fn nms_min(c: &[Candidate], threshold: f64) -> Vec<usize> {
    let area = |b: &[f64; 4]| (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
    let mut order = by_score(c);
    let mut keep = Vec::new();
    while let Some((&i, rest)) = order.split_first() {
        keep.push(i);
        let bi = &c[i].b;
        order = rest
            .iter()
            .copied()
            .filter(|&j| {
                let bj = &c[j].b;
                let w = (bi[2].min(bj[2]) - bi[0].max(bj[0]) + 1.0).max(0.0);
                let h = (bi[3].min(bj[3]) - bi[1].max(bj[1]) + 1.0).max(0.0);
                w * h / area(bi).min(area(bj)) <= threshold
            })
            .collect();
    }
    keep
}

/// Upstream's `rerec`: a square of the longer side around the box's centre.
fn rerec(b: [f64; 4]) -> [f64; 4] {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    let l = w.max(h);
    let x1 = b[0] + w * 0.5 - l * 0.5;
    let y1 = b[1] + h * 0.5 - l * 0.5;
    [x1, y1, x1 + l, y1 + l]
}

/// Upstream's `bbreg`: the regression scaled by the box's size (+1).
fn bbreg(b: [f64; 4], reg: [f64; 4]) -> [f64; 4] {
    let (w, h) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
    [
        b[0] + reg[0] * w,
        b[1] + reg[1] * h,
        b[2] + reg[2] * w,
        b[3] + reg[3] * h,
    ]
}

fn read<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>, String> {
    t.try_into_vec_as::<f32>()
        .map_err(|e| format!("reading the MTCNN {what} back failed: {e:?}"))
}

/// The three networks on one device, with the cascade's settings.
#[derive(Debug)]
pub struct Detector {
    pub pnet: PNet,
    pub rnet: RNet,
    pub onet: ONet,
    pub device: Device,
    pub settings: Settings,
}

impl Detector {
    /// Loads the fetched weights ([`crate::fetch::PNET`], `RNET`, `ONET`) on `device`.
    pub fn pretrained(device: &Device) -> Result<Self, String> {
        Ok(Self {
            pnet: PNet::pretrained(device)?,
            rnet: RNet::pretrained(device)?,
            onet: ONet::pretrained(device)?,
            device: device.clone(),
            settings: Settings::default(),
        })
    }

    /// The pyramid's scales for an image `h x w`.
    pub fn scales(&self, h: usize, w: usize) -> Vec<f64> {
        let m = 12.0 / self.settings.min_face_size;
        let mut minl = h.min(w) as f64 * m;
        let mut scale = m;
        let mut scales = Vec::new();
        while minl >= 12.0 {
            scales.push(scale);
            scale *= self.settings.factor;
            minl *= self.settings.factor;
        }
        scales
    }

    /// The faces in an RGB image, by decreasing probability.
    pub fn detect(&self, image: &image::RgbImage) -> Result<Vec<Face>, String> {
        Ok(self.detect_counted(image)?.0)
    }

    /// [`Detector::detect`], with the number of candidates each stage left.
    pub fn detect_counted(&self, image: &image::RgbImage) -> Result<(Vec<Face>, Stages), String> {
        let mut stages = Stages::default();
        let img = Planes::new(image);
        let (h, w) = (img.h, img.w);
        let [t1, t2, t3] = self.settings.thresholds;

        // Stage 1: P-Net over the pyramid.
        let mut boxes = Vec::new();
        let scales = self.scales(h, w);
        stages.scales = scales.len();
        for scale in scales {
            let (sh, sw) = (
                (h as f64 * scale + 1.0) as usize,
                (w as f64 * scale + 1.0) as usize,
            );
            let mut data = Vec::with_capacity(3 * sh * sw);
            img.area_resize_into((0, h), (0, w), sh, sw, &mut data);
            let x = Tensor::<4>::from_data(TensorData::new(data, [1, 3, sh, sw]), &self.device);
            let out = self.pnet.forward(x);
            let [_, _, oh, ow] = out.probs.dims();
            let probs = read(out.probs, "P-Net probabilities")?;
            let reg = read(out.boxes, "P-Net boxes")?;
            let plane = oh * ow;
            let mut found = Vec::new();
            for y in 0..oh {
                for x in 0..ow {
                    let k = y * ow + x;
                    let p = f64::from(probs[plane + k]);
                    if p >= t1 {
                        let (bx, by) = (x as f64, y as f64);
                        found.push(Candidate {
                            b: [
                                ((2.0 * bx + 1.0) / scale).floor(),
                                ((2.0 * by + 1.0) / scale).floor(),
                                ((2.0 * bx + 12.0) / scale).floor(),
                                ((2.0 * by + 12.0) / scale).floor(),
                            ],
                            score: p,
                            reg: std::array::from_fn(|c| f64::from(reg[c * plane + k])),
                        });
                    }
                }
            }
            boxes.extend(nms(&found, 0.5));
        }
        stages.pnet = boxes.len();
        let boxes = nms(&boxes, 0.7);
        stages.pnet_nms = boxes.len();
        let boxes: Vec<Candidate> = boxes
            .into_iter()
            .map(|c| {
                let (rw, rh) = (c.b[2] - c.b[0], c.b[3] - c.b[1]);
                let b = [
                    c.b[0] + c.reg[0] * rw,
                    c.b[1] + c.reg[1] * rh,
                    c.b[2] + c.reg[2] * rw,
                    c.b[3] + c.reg[3] * rh,
                ];
                Candidate { b: rerec(b), ..c }
            })
            .collect();
        if boxes.is_empty() {
            return Ok((Vec::new(), stages));
        }

        // Stage 2: R-Net on 24x24 crops.
        let (boxes, data) = self.crops(&img, boxes, RNET_SIZE);
        if boxes.is_empty() {
            return Ok((Vec::new(), stages));
        }
        let n = boxes.len();
        let x = Tensor::<4>::from_data(
            TensorData::new(data, [n, 3, RNET_SIZE, RNET_SIZE]),
            &self.device,
        );
        let out = self.rnet.forward(x);
        let probs = read(out.probs, "R-Net probabilities")?;
        let reg = read(out.boxes, "R-Net boxes")?;
        let passed: Vec<Candidate> = boxes
            .iter()
            .enumerate()
            .filter(|(i, _)| f64::from(probs[2 * i + 1]) > t2)
            .map(|(i, c)| Candidate {
                b: c.b,
                score: f64::from(probs[2 * i + 1]),
                reg: std::array::from_fn(|k| f64::from(reg[4 * i + k])),
            })
            .collect();
        let boxes: Vec<Candidate> = nms(&passed, 0.7)
            .into_iter()
            .map(|c| Candidate {
                b: rerec(bbreg(c.b, c.reg)),
                ..c
            })
            .collect();
        stages.rnet = boxes.len();
        if boxes.is_empty() {
            return Ok((Vec::new(), stages));
        }

        // Stage 3: O-Net on 48x48 crops.
        let (boxes, data) = self.crops(&img, boxes, ONET_SIZE);
        if boxes.is_empty() {
            return Ok((Vec::new(), stages));
        }
        let n = boxes.len();
        let x = Tensor::<4>::from_data(
            TensorData::new(data, [n, 3, ONET_SIZE, ONET_SIZE]),
            &self.device,
        );
        let out = self.onet.forward(x);
        let probs = read(out.probs, "O-Net probabilities")?;
        let reg = read(out.boxes, "O-Net boxes")?;
        let marks = read(out.landmarks, "O-Net landmarks")?;
        let mut passed = Vec::new();
        let mut landmarks = Vec::new();
        for (i, c) in boxes.iter().enumerate() {
            let p = f64::from(probs[2 * i + 1]);
            if p <= t3 {
                continue;
            }
            let b = c.b;
            let (bw, bh) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
            let l = &marks[10 * i..10 * i + 10];
            landmarks.push(std::array::from_fn::<[f64; 2], 5, _>(|k| {
                [
                    bw * f64::from(l[k]) + b[0] - 1.0,
                    bh * f64::from(l[5 + k]) + b[1] - 1.0,
                ]
            }));
            let r = std::array::from_fn(|k| f64::from(reg[4 * i + k]));
            passed.push(Candidate {
                b: bbreg(b, r),
                score: p,
                reg: r,
            });
        }
        stages.onet = passed.len();
        let faces: Vec<Face> = nms_min(&passed, 0.7)
            .into_iter()
            .map(|i| Face {
                bbox: passed[i].b.map(|v| v as f32),
                probability: passed[i].score as f32,
                landmarks: landmarks[i].map(|p| p.map(|v| v as f32)),
            })
            .collect();
        stages.faces = faces.len();
        Ok((faces, stages))
    }

    /// Upstream's `pad` and crop: each box truncated to integers and clamped into the image,
    /// rows `y - 1 .. ey`, columns `x - 1 .. ex` area-resized to `size x size` and normalised.
    /// Returns the boxes that have a crop (see the module's note) and the crops, channels first.
    fn crops(
        &self,
        img: &Planes,
        boxes: Vec<Candidate>,
        size: usize,
    ) -> (Vec<Candidate>, Vec<f32>) {
        let mut data = Vec::with_capacity(boxes.len() * 3 * size * size);
        let mut kept = Vec::with_capacity(boxes.len());
        let (w, h) = (img.w as i64, img.h as i64);
        for c in boxes {
            let [x, y, ex, ey] = c.b.map(|v| v.trunc() as i64);
            let (x, y, ex, ey) = (x.max(1), y.max(1), ex.min(w), ey.min(h));
            if ey > y - 1 && ex > x - 1 {
                img.area_resize_into(
                    ((y - 1) as usize, ey as usize),
                    ((x - 1) as usize, ex as usize),
                    size,
                    size,
                    &mut data,
                );
                kept.push(c);
            }
        }
        (kept, data)
    }
}

/// Decodes an image (PNG or JPEG) into 8-bit RGB (grayscale replicated, alpha dropped).
pub fn decode(bytes: &[u8]) -> Result<image::RgbImage, String> {
    let image = image::load_from_memory(bytes)
        .map_err(|e| format!("not a decodable image ({} bytes): {e}", bytes.len()))?;
    Ok(image.to_rgb8())
}

/// The MTCNN face detector as a [`ModelHandler`]: an image path in, the faces in it out.
#[derive(Clone, Debug)]
pub struct Mtcnn {
    pub batching: Batching,
    pub settings: Settings,
    /// Let `--device gpu` take a software adapter when there is no GPU (for tests).
    pub software_gpu: bool,
}

impl Default for Mtcnn {
    fn default() -> Self {
        Self::new()
    }
}

impl Mtcnn {
    pub fn new() -> Self {
        Self {
            batching: Batching {
                max_batch: 4,
                ..Batching::default()
            },
            settings: Settings::default(),
            software_gpu: false,
        }
    }

    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.batching.max_batch = max_batch;
        self
    }

    /// See [`Mtcnn::software_gpu`].
    pub fn allow_software_gpu(mut self) -> Self {
        self.software_gpu = true;
        self
    }

    /// The model id: "mtcnn-" and the first 8 hex digits of each network's weights' sha256.
    pub fn model_id(&self) -> String {
        use crate::fetch::{ONET, PNET, RNET};
        format!(
            "mtcnn-{}{}{}",
            &PNET.sha256[..8],
            &RNET.sha256[..8],
            &ONET.sha256[..8]
        )
    }
}

impl ModelHandler for Mtcnn {
    type Input = PathBuf;
    type Prepared = image::RgbImage;
    type Inference = Vec<Face>;
    type Model = Detector;

    fn name(&self) -> String {
        "mtcnn".into()
    }

    fn batching(&self) -> Batching {
        self.batching
    }

    fn load(&self, choice: DeviceChoice) -> Result<Loaded<Self::Model>, String> {
        let (device, device_name) = crate::device::select_with(choice, self.software_gpu)?;
        let mut detector = Detector::pretrained(&device)?;
        detector.settings = self.settings;
        Ok(Loaded::new(detector, device_name, self.model_id()))
    }

    fn prepare(&self, input: &Self::Input) -> Result<Self::Prepared, String> {
        let bytes = std::fs::read(input)
            .map_err(|e| format!("cannot read the image `{}`: {e}", input.display()))?;
        decode(&bytes).map_err(|e| format!("`{}`: {e}", input.display()))
    }

    fn infer(
        &self,
        model: &mut Self::Model,
        batch: Vec<Self::Prepared>,
    ) -> Result<Vec<Self::Inference>, String> {
        batch.iter().map(|image| model.detect(image)).collect()
    }
}
