//! The MTCNN cascade as three pipeline stages: one [`ModelHandler`] per network, and the box
//! arithmetic between them as plain functions, so that a `pipeline!` shows (and type-checks)
//! every step:
//!
//! ```text
//! Frame -> run_inference(PNetStage) -> map(proposals)
//!       -> run_inference(RNetStage) -> map(refine)
//!       -> run_inference(ONetStage) -> map(faces) -> Detected
//! ```
//!
//! Each stage runs the same step functions as [`Detector::detect`](super::Detector) (see the
//! `cascade` module), so the faces are the same (`models/tests/suite/mtcnn_stages.rs`).
//! What staging changes is how the work is spread: each network has its own replica thread, so
//! P-Net can search the next image's pyramid while R-Net and O-Net look at the previous one's
//! candidates; the pyramid and the crops are cut in `prepare`, on the thread in front of the
//! network; and R-Net and O-Net run the crops of all the images of a batch as one tensor.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use tandem_runtime::inference::{Batching, DeviceRequest, Loaded, ModelHandler, PredictionResult};

use super::{
    crops, onet_faces, onet_score, pnet_cells, pnet_merge, pnet_refine, pyramid, rnet_refine,
    rnet_score, scales, Candidate, Face, Level, Marked, MtcnnConfig, ONet, PNet, Planes, RNet,
    ONET_SIZE, RNET_SIZE,
};
use crate::Error;

/// An image on its way through the stages: decoded once, shared (cloning is cheap).
#[derive(Clone, Debug)]
pub struct Frame {
    pub path: PathBuf,
    pub image: Arc<image::RgbImage>,
    pub planes: Arc<Planes>,
}

impl Frame {
    pub fn new(path: PathBuf, image: image::RgbImage) -> Self {
        let planes = Arc::new(Planes::new(&image));
        Self {
            path,
            image: Arc::new(image),
            planes,
        }
    }

    /// Reads and decodes an image file (PNG or JPEG; grayscale and alpha converted to RGB).
    pub fn open(path: &Path) -> Result<Self, Error> {
        let image = crate::image_io::read_rgb(path)?;
        Ok(Self::new(path.to_owned(), image))
    }
}

/// Candidate boxes in one frame, between two stages.
#[derive(Clone, Debug)]
pub struct Proposals {
    pub frame: Frame,
    pub boxes: Vec<Candidate>,
}

/// The faces found in one frame, by decreasing probability.
#[derive(Clone, Debug)]
pub struct Detected {
    pub frame: Frame,
    pub faces: Vec<Face>,
}

/// P-Net's cells per pyramid level (probability at least the first threshold), for one frame.
pub type PyramidCells = Vec<Vec<Candidate>>;

/// After P-Net: NMS per level and over all levels, P-Net's regression, squared boxes.
pub fn proposals(p: PredictionResult<Frame, PyramidCells>) -> Proposals {
    Proposals {
        frame: p.example,
        boxes: pnet_refine(pnet_merge(p.inference)),
    }
}

/// After R-Net: its threshold (the second of `config`'s), NMS, R-Net's regression, squared boxes.
pub fn refine(p: PredictionResult<Proposals, Vec<Candidate>>, config: &MtcnnConfig) -> Proposals {
    Proposals {
        frame: p.example.frame,
        boxes: rnet_refine(p.inference, config.thresholds[1]),
    }
}

/// After O-Net: its threshold (the third of `config`'s), landmarks, O-Net's regression, the last
/// NMS.
pub fn faces(p: PredictionResult<Proposals, Vec<Marked>>, config: &MtcnnConfig) -> Detected {
    Detected {
        frame: p.example.frame,
        faces: onet_faces(p.inference, config.thresholds[2]).0,
    }
}

fn stage_id(name: &str, sha256: &str) -> String {
    format!("mtcnn-{name}-{}", &sha256[..8])
}

/// `run_inference(PNetStage::new(config))`: a [`Frame`] in, P-Net's cells over its pyramid
/// out (see [`proposals`] for what comes next). The pyramid is cut in `prepare`; a batch runs
/// its frames one after the other (their pyramids differ in size). Batches of up to 2 frames by
/// default.
#[derive(Clone, Debug)]
pub struct PNetStage {
    pub config: MtcnnConfig,
}

impl PNetStage {
    pub fn new(config: MtcnnConfig) -> Self {
        Self { config }
    }
}

impl ModelHandler for PNetStage {
    type Input = Frame;
    type Prepared = Vec<Level>;
    type Inference = PyramidCells;
    type Model = (PNet, Device);

    fn name(&self) -> String {
        "mtcnn-pnet".into()
    }

    fn batching(&self) -> Batching {
        Batching {
            max_batch: 2,
            ..Batching::default()
        }
    }

    fn load(&self, choice: DeviceRequest) -> Result<Loaded<Self::Model>, String> {
        let load = || -> Result<_, Error> {
            let (device, device_name) = crate::device::select(choice)?;
            let pnet = PNet::pretrained(&device)?;
            let id = stage_id("pnet", crate::fetch::PNET.sha256);
            Ok(Loaded::new((pnet, device), device_name, id))
        };
        load().map_err(|e| e.to_string())
    }

    fn prepare(&self, frame: &Frame) -> Result<Self::Prepared, String> {
        let planes = &frame.planes;
        let scales = scales(&self.config, planes.height(), planes.width());
        Ok(pyramid(planes, &scales))
    }

    fn infer(
        &self,
        (pnet, device): &mut Self::Model,
        batch: Vec<Self::Prepared>,
    ) -> Result<Vec<Self::Inference>, String> {
        let threshold = self.config.thresholds[0];
        batch
            .into_iter()
            .map(|levels| pnet_cells(pnet, device, levels, threshold).map_err(|e| e.to_string()))
            .collect()
    }
}

/// The boxes of one [`Proposals`] that have a crop, and their crops.
pub type Cropped = (Vec<Candidate>, Vec<f32>);

/// Runs one network over the crops of a whole batch as one tensor and hands each input its part.
fn score_batch<T>(
    batch: Vec<Cropped>,
    score: impl FnOnce(Vec<Candidate>, Vec<f32>) -> Result<Vec<T>, Error>,
) -> Result<Vec<Vec<T>>, Error> {
    let counts: Vec<usize> = batch.iter().map(|(boxes, _)| boxes.len()).collect();
    let (mut boxes, mut data) = (Vec::new(), Vec::new());
    for (b, d) in batch {
        boxes.extend(b);
        data.extend(d);
    }
    let mut scored = score(boxes, data)?.into_iter();
    Ok(counts
        .into_iter()
        .map(|n| scored.by_ref().take(n).collect())
        .collect())
}

/// What differs between the R-Net and O-Net stages: the network, the size of its crops and what
/// it says about each crop.
pub trait CropNet: Send + Sync + 'static {
    type Net: Send + 'static;
    /// What the network says about one crop.
    type Out: Send + 'static;
    /// `rnet`, `onet`: in the stage's name and model id.
    const NAME: &'static str;
    /// The side of its square crops, in pixels.
    const SIZE: usize;
    /// The pinned weights file (its hash goes into the model id).
    const FILE: crate::fetch::Asset;
    fn pretrained(device: &Device) -> Result<Self::Net, Error>;
    /// Runs the network over the crops of `boxes` (one tensor).
    fn score(
        net: &Self::Net,
        device: &Device,
        boxes: Vec<Candidate>,
        crops: Vec<f32>,
    ) -> Result<Vec<Self::Out>, Error>;
}

/// R-Net: 24x24 crops; probability and regression per box.
#[derive(Clone, Copy, Debug)]
pub struct RNetCrops;

impl CropNet for RNetCrops {
    type Net = RNet;
    type Out = Candidate;
    const NAME: &'static str = "rnet";
    const SIZE: usize = RNET_SIZE;
    const FILE: crate::fetch::Asset = crate::fetch::RNET;
    fn pretrained(device: &Device) -> Result<RNet, Error> {
        RNet::pretrained(device)
    }
    fn score(
        net: &RNet,
        device: &Device,
        boxes: Vec<Candidate>,
        crops: Vec<f32>,
    ) -> Result<Vec<Candidate>, Error> {
        rnet_score(net, device, boxes, crops)
    }
}

/// O-Net: 48x48 crops; probability, regression and landmarks per box.
#[derive(Clone, Copy, Debug)]
pub struct ONetCrops;

impl CropNet for ONetCrops {
    type Net = ONet;
    type Out = Marked;
    const NAME: &'static str = "onet";
    const SIZE: usize = ONET_SIZE;
    const FILE: crate::fetch::Asset = crate::fetch::ONET;
    fn pretrained(device: &Device) -> Result<ONet, Error> {
        ONet::pretrained(device)
    }
    fn score(
        net: &ONet,
        device: &Device,
        boxes: Vec<Candidate>,
        crops: Vec<f32>,
    ) -> Result<Vec<Marked>, Error> {
        onet_score(net, device, boxes, crops)
    }
}

/// A stage that runs R-Net or O-Net over the boxes of [`Proposals`]: each box that has a crop
/// comes out with the network's verdict. The crops are cut in `prepare`; a batch's crops run as
/// one tensor. Batches of up to 4 proposals by default.
#[derive(Clone, Copy, Debug)]
pub struct CropStage<N> {
    net: std::marker::PhantomData<fn() -> N>,
}

/// `run_inference(RNetStage::new())`: each box with R-Net's probability and regression (see
/// [`refine`] for what comes next).
pub type RNetStage = CropStage<RNetCrops>;

/// `run_inference(ONetStage::new())`: each box with O-Net's probability, regression and
/// landmarks (see [`faces`] for what comes next).
pub type ONetStage = CropStage<ONetCrops>;

impl<N: CropNet> Default for CropStage<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N: CropNet> CropStage<N> {
    pub fn new() -> Self {
        Self {
            net: std::marker::PhantomData,
        }
    }
}

impl<N: CropNet> ModelHandler for CropStage<N> {
    type Input = Proposals;
    type Prepared = Cropped;
    type Inference = Vec<N::Out>;
    type Model = (N::Net, Device);

    fn name(&self) -> String {
        format!("mtcnn-{}", N::NAME)
    }

    fn batching(&self) -> Batching {
        Batching {
            max_batch: 4,
            ..Batching::default()
        }
    }

    fn load(&self, choice: DeviceRequest) -> Result<Loaded<Self::Model>, String> {
        let load = || -> Result<_, Error> {
            let (device, device_name) = crate::device::select(choice)?;
            let net = N::pretrained(&device)?;
            let id = stage_id(N::NAME, N::FILE.sha256);
            Ok(Loaded::new((net, device), device_name, id))
        };
        load().map_err(|e| e.to_string())
    }

    fn prepare(&self, p: &Proposals) -> Result<Self::Prepared, String> {
        Ok(crops(&p.frame.planes, p.boxes.clone(), N::SIZE))
    }

    fn infer(
        &self,
        (net, device): &mut Self::Model,
        batch: Vec<Self::Prepared>,
    ) -> Result<Vec<Self::Inference>, String> {
        score_batch(batch, |boxes, data| N::score(net, device, boxes, data))
            .map_err(|e| e.to_string())
    }
}
