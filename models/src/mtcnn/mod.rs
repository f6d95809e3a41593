//! MTCNN's three networks (P-Net, R-Net, O-Net), ported to Burn from facenet-pytorch 2.6.0
//! (`facenet_pytorch/models/mtcnn.py`), with the weights it ships (`facenet_pytorch/data/
//! {pnet,rnet,onet}.pt`, legacy torch format, read by Burn's `PytorchStore`) fetched through
//! [`crate::fetch`], and the detection cascade around them.
//!
//! - [`PNet`] is fully convolutional: any `[n, 3, h, w]` image (h, w >= 12) gives a map of face
//!   probabilities `[n, 2, h', w']` (softmax over the channels; channel 1 is "face") and box
//!   offsets `[n, 4, h', w']`, one cell per 12x12 window at stride 2.
//! - [`RNet`] takes 24x24 crops and gives probabilities `[n, 2]` and box offsets `[n, 4]`.
//! - [`ONet`] takes 48x48 crops and gives probabilities `[n, 2]`, box offsets `[n, 4]` and five
//!   landmarks `[n, 10]` (x1..x5 then y1..y5, relative to the box).
//!
//! Inputs are RGB, normalised as upstream: `(pixel - 127.5) * 0.0078125`
//! ([`normalize`]).
//!
//! Faithful details: the max-pools use PyTorch's `ceil_mode=True` (Burn's `MaxPool2d` supports
//! it); R-Net and O-Net transpose height and width (`permute(0, 3, 2, 1)`) before flattening into
//! their dense layer, as upstream does (the weights were converted from Caffe that way).
//!
//! Outputs match an independent NumPy port of the three forward passes on crops of a real photo
//! within 1e-4 relative (`models/tests/suite/mtcnn.rs`, reference from `models/tests/reference/mtcnn.py`).
//! The detection cascade around them (image pyramid, NMS, box calibration, landmarks):
//! [`Detector`], run by [`Mtcnn`] as one pipeline stage or by [`PNetStage`], [`RNetStage`] and
//! [`ONetStage`] as three.
//!
//! - `model`: the networks ([`PNet`], [`RNet`], [`ONet`]);
//! - `weights`: their loaders (`PNet::load`, `PNet::pretrained`, ...);
//! - `preprocessing`: the image as planes, the pyramid and the crops ([`Planes`], [`pyramid`],
//!   [`crops`], [`normalize`]);
//! - `cascade`: [`MtcnnConfig`], the box arithmetic between the networks and [`Detector`], which
//!   chains them for one image;
//! - `handler`: [`Mtcnn`], the cascade as one `ModelHandler`;
//! - `stages`: the cascade as three pipeline stages ([`PNetStage`], [`RNetStage`], [`ONetStage`]).

mod cascade;
mod handler;
mod model;
mod pool;
mod preprocessing;
mod stages;
mod weights;

pub use cascade::{
    onet_faces, onet_score, pnet_cells, pnet_merge, pnet_refine, rnet_refine, rnet_score, scales,
    Candidate, Detector, Face, Marked, MtcnnConfig, Stages,
};
pub use handler::Mtcnn;
pub use model::{ONet, ONetOutput, PNet, PNetOutput, RNet, RNetOutput, ONET_SIZE, RNET_SIZE};
pub use preprocessing::{crops, normalize, pyramid, Level, Planes};
pub use stages::{
    faces, proposals, refine, CropNet, CropStage, Cropped, Detected, Frame, ONetCrops, ONetStage,
    PNetStage, Proposals, PyramidCells, RNetCrops, RNetStage,
};
