//! The MTCNN face-detection cascade around the three networks ([`PNet`], [`RNet`], [`ONet`]), ported from
//! facenet-pytorch 2.6.0 (`facenet_pytorch/models/utils/detect_face.py: detect_face`, with the
//! defaults of its `MTCNN`: minimum face size 20, thresholds 0.6 / 0.7 / 0.7, pyramid factor
//! 0.709: [`MtcnnConfig`]); [`Mtcnn`](super::Mtcnn) is its `ModelHandler` (an image path in, the
//! faces found out).
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
//! Each step is a public function ([`pyramid`], [`pnet_cells`], [`pnet_merge`], [`pnet_refine`],
//! [`crops`], [`rnet_score`], [`rnet_refine`], [`onet_score`], [`onet_faces`]):
//! [`Detector::detect`] chains them for one image, and the `stages` module runs them as three
//! pipeline stages, one model handler per network.
//!
//! The box arithmetic is in f64, the networks and resizing in f32. Matched against an
//! independent NumPy port (`models/tests/reference/mtcnn_cascade.py`) on real photos:
//! `models/tests/suite/mtcnn_cascade.rs`.

use burn::config::Config;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use super::preprocessing::{crops, pyramid, Level, Planes};
use super::{ONet, PNet, RNet, ONET_SIZE, RNET_SIZE};
use crate::Error;

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

/// The cascade's configuration: upstream `MTCNN`'s defaults by [`MtcnnConfig::new`] (or
/// `default`). The three networks have no hyperparameters (their architectures are fixed).
#[derive(Config, Copy, Debug, PartialEq)]
pub struct MtcnnConfig {
    /// The smallest face searched for, in pixels (20).
    #[config(default = 20.0)]
    pub min_face_size: f64,
    /// The probability thresholds of P-Net, R-Net and O-Net (0.6, 0.7, 0.7).
    #[config(default = "[0.6, 0.7, 0.7]")]
    pub thresholds: [f64; 3],
    /// The pyramid's scale factor (0.709).
    #[config(default = 0.709)]
    pub factor: f64,
}

impl Default for MtcnnConfig {
    fn default() -> Self {
        Self::new()
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

/// A candidate box between the cascade's steps: corners, the probability the last network gave
/// it and that network's box regression (not yet applied).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Candidate {
    /// `[x1, y1, x2, y2]` in pixels of the image.
    pub b: [f64; 4],
    pub score: f64,
    pub reg: [f64; 4],
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

fn read<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>, Error> {
    t.try_into_vec_as::<f32>()
        .map_err(Error::read_back(format!("MTCNN {what}")))
}

/// The three networks on one device, with the cascade's configuration.
#[derive(Debug)]
pub struct Detector {
    pub pnet: PNet,
    pub rnet: RNet,
    pub onet: ONet,
    pub device: Device,
    pub config: MtcnnConfig,
}

impl Detector {
    /// Loads the fetched weights ([`crate::fetch::PNET`], `RNET`, `ONET`) on `device`.
    pub fn pretrained(device: &Device) -> Result<Self, Error> {
        Ok(Self {
            pnet: PNet::pretrained(device)?,
            rnet: RNet::pretrained(device)?,
            onet: ONet::pretrained(device)?,
            device: device.clone(),
            config: MtcnnConfig::new(),
        })
    }

    /// The pyramid's scales for an image `h x w`.
    pub fn scales(&self, h: usize, w: usize) -> Vec<f64> {
        scales(&self.config, h, w)
    }

    /// The faces in an RGB image, by decreasing probability.
    pub fn detect(&self, image: &image::RgbImage) -> Result<Vec<Face>, Error> {
        Ok(self.detect_counted(image)?.0)
    }

    /// [`Detector::detect`], with the number of candidates each stage left.
    pub fn detect_counted(&self, image: &image::RgbImage) -> Result<(Vec<Face>, Stages), Error> {
        let mut stages = Stages::default();
        let img = Planes::new(image);
        let [t1, t2, t3] = self.config.thresholds;

        // Stage 1: P-Net over the pyramid.
        let scales = self.scales(img.height(), img.width());
        stages.scales = scales.len();
        let cells = pnet_cells(&self.pnet, &self.device, pyramid(&img, &scales), t1)?;
        let boxes = pnet_merge(cells);
        stages.pnet = boxes.len();
        let boxes = pnet_refine(boxes);
        stages.pnet_nms = boxes.len();
        if boxes.is_empty() {
            return Ok((Vec::new(), stages));
        }

        // Stage 2: R-Net on 24x24 crops.
        let (boxes, data) = crops(&img, boxes, RNET_SIZE);
        if boxes.is_empty() {
            return Ok((Vec::new(), stages));
        }
        let boxes = rnet_refine(rnet_score(&self.rnet, &self.device, boxes, data)?, t2);
        stages.rnet = boxes.len();
        if boxes.is_empty() {
            return Ok((Vec::new(), stages));
        }

        // Stage 3: O-Net on 48x48 crops.
        let (boxes, data) = crops(&img, boxes, ONET_SIZE);
        if boxes.is_empty() {
            return Ok((Vec::new(), stages));
        }
        let (faces, passed) = onet_faces(onet_score(&self.onet, &self.device, boxes, data)?, t3);
        stages.onet = passed;
        stages.faces = faces.len();
        Ok((faces, stages))
    }
}

// The cascade's steps, one function each: [`Detector::detect_counted`] chains them, and
// the `stages` module runs them as separate pipeline stages (a model handler per network, the
// box arithmetic between them as plain functions).

/// The pyramid's scales for an image `h x w`: `12 / min_size * factor^k` while the shorter side
/// times the scale is at least 12.
pub fn scales(config: &MtcnnConfig, h: usize, w: usize) -> Vec<f64> {
    let m = 12.0 / config.min_face_size;
    let mut minl = h.min(w) as f64 * m;
    let mut scale = m;
    let mut scales = Vec::new();
    while minl >= 12.0 {
        scales.push(scale);
        scale *= config.factor;
        minl *= config.factor;
    }
    scales
}

/// Step 1b (P-Net): per level, the cells whose face probability is at least `threshold`, as
/// boxes in image pixels with P-Net's probability and regression (upstream's
/// `generateBoundingBox`).
pub fn pnet_cells(
    pnet: &PNet,
    device: &Device,
    levels: Vec<Level>,
    threshold: f64,
) -> Result<Vec<Vec<Candidate>>, Error> {
    let mut cells = Vec::with_capacity(levels.len());
    for Level {
        scale,
        h: sh,
        w: sw,
        data,
    } in levels
    {
        let x = Tensor::<4>::from_data(TensorData::new(data, [1, 3, sh, sw]), device);
        let out = pnet.forward(x);
        let [_, _, oh, ow] = out.probs.dims();
        let probs = read(out.probs, "P-Net probabilities")?;
        let reg = read(out.boxes, "P-Net boxes")?;
        let plane = oh * ow;
        let mut found = Vec::new();
        for y in 0..oh {
            for x in 0..ow {
                let k = y * ow + x;
                let p = f64::from(probs[plane + k]);
                if p >= threshold {
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
        cells.push(found);
    }
    Ok(cells)
}

/// Step 1c: NMS 0.5 within each level, then the boxes of all levels together.
pub fn pnet_merge(cells: Vec<Vec<Candidate>>) -> Vec<Candidate> {
    cells.iter().flat_map(|found| nms(found, 0.5)).collect()
}

/// Step 1d: NMS 0.7 over all levels, P-Net's regression (scaled by `x2 - x1`, no +1), squared
/// around the centre (`rerec`).
pub fn pnet_refine(boxes: Vec<Candidate>) -> Vec<Candidate> {
    nms(&boxes, 0.7)
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
        .collect()
}

/// Step 2b (R-Net) on the 24x24 `crops` of `boxes` (from [`crops`], possibly of several images
/// one after the other): each box with R-Net's face probability as its score and R-Net's
/// regression.
pub fn rnet_score(
    rnet: &RNet,
    device: &Device,
    boxes: Vec<Candidate>,
    crops: Vec<f32>,
) -> Result<Vec<Candidate>, Error> {
    let n = boxes.len();
    if n == 0 {
        return Ok(boxes);
    }
    let x = Tensor::<4>::from_data(TensorData::new(crops, [n, 3, RNET_SIZE, RNET_SIZE]), device);
    let out = rnet.forward(x);
    let probs = read(out.probs, "R-Net probabilities")?;
    let reg = read(out.boxes, "R-Net boxes")?;
    Ok(boxes
        .iter()
        .enumerate()
        .map(|(i, c)| Candidate {
            b: c.b,
            score: f64::from(probs[2 * i + 1]),
            reg: std::array::from_fn(|k| f64::from(reg[4 * i + k])),
        })
        .collect())
}

/// Step 2c: the boxes R-Net gives a probability above `threshold`, NMS 0.7, R-Net's regression
/// (`bbreg`), squared (`rerec`).
pub fn rnet_refine(scored: Vec<Candidate>, threshold: f64) -> Vec<Candidate> {
    let passed: Vec<Candidate> = scored.into_iter().filter(|c| c.score > threshold).collect();
    nms(&passed, 0.7)
        .into_iter()
        .map(|c| Candidate {
            b: rerec(bbreg(c.b, c.reg)),
            ..c
        })
        .collect()
}

/// A box with what O-Net says about it: its probability and regression (in the candidate) and
/// the five landmarks relative to the box (x1..x5 then y1..y5).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Marked {
    pub candidate: Candidate,
    pub landmarks: [f64; 10],
}

/// Step 3b (O-Net) on the 48x48 `crops` of `boxes` (from [`crops`], possibly of several images).
pub fn onet_score(
    onet: &ONet,
    device: &Device,
    boxes: Vec<Candidate>,
    crops: Vec<f32>,
) -> Result<Vec<Marked>, Error> {
    let n = boxes.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let x = Tensor::<4>::from_data(TensorData::new(crops, [n, 3, ONET_SIZE, ONET_SIZE]), device);
    let out = onet.forward(x);
    let probs = read(out.probs, "O-Net probabilities")?;
    let reg = read(out.boxes, "O-Net boxes")?;
    let marks = read(out.landmarks, "O-Net landmarks")?;
    Ok(boxes
        .iter()
        .enumerate()
        .map(|(i, c)| Marked {
            candidate: Candidate {
                b: c.b,
                score: f64::from(probs[2 * i + 1]),
                reg: std::array::from_fn(|k| f64::from(reg[4 * i + k])),
            },
            landmarks: std::array::from_fn(|k| f64::from(marks[10 * i + k])),
        })
        .collect())
}

/// Step 3c: the boxes O-Net gives a probability above `threshold`; their landmarks in image
/// pixels (from the box before the regression: `w * l + x1 - 1`); O-Net's regression (`bbreg`);
/// a last NMS 0.7 against the smaller box ('Min'). Returns the faces, by decreasing probability,
/// and how many boxes passed the threshold.
pub fn onet_faces(scored: Vec<Marked>, threshold: f64) -> (Vec<Face>, usize) {
    let mut passed = Vec::new();
    let mut landmarks = Vec::new();
    for Marked {
        candidate: c,
        landmarks: l,
    } in scored
    {
        if c.score <= threshold {
            continue;
        }
        let b = c.b;
        let (bw, bh) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
        landmarks.push(std::array::from_fn::<[f64; 2], 5, _>(|k| {
            [bw * l[k] + b[0] - 1.0, bh * l[5 + k] + b[1] - 1.0]
        }));
        passed.push(Candidate {
            b: bbreg(b, c.reg),
            ..c
        });
    }
    let faces = nms_min(&passed, 0.7)
        .into_iter()
        .map(|i| Face {
            bbox: passed[i].b.map(|v| v as f32),
            probability: passed[i].score as f32,
            landmarks: landmarks[i].map(|p| p.map(|v| v as f32)),
        })
        .collect();
    (faces, passed.len())
}
