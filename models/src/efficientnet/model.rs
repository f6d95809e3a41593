//! The network: [`Variant`] (Lite0 or Lite2), [`EfficientNetConfig`] (its architecture) and
//! [`EfficientNet`].

use burn::config::Config;
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::Module;
use burn::tensor::{Device, Tensor};

use super::depthwise;

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

    /// The architecture: (width, depth) = (1.0, 1.0) for Lite0, (1.1, 1.2) for Lite2 (upstream's
    /// `efficientnet_params`).
    pub fn config(self) -> EfficientNetConfig {
        match self {
            Variant::Lite0 => EfficientNetConfig::new(1.0, 1.0),
            Variant::Lite2 => EfficientNetConfig::new(1.1, 1.2),
        }
    }

    /// The weights file, fetched on first use.
    pub fn weights(self) -> Asset {
        match self {
            Variant::Lite0 => crate::fetch::LITE0,
            Variant::Lite2 => crate::fetch::LITE2,
        }
    }
}

/// EfficientNet-Lite's architecture: the width and depth coefficients that scale the stages
/// (see [`Variant::config`]), the number of classes and the BatchNorm epsilon.
#[derive(Config, Debug)]
pub struct EfficientNetConfig {
    /// Scales the channels of every stage but the stem and the head (`round_filters`).
    pub width_coefficient: f64,
    /// Scales the repeats of every stage but the first and the last (`round_repeats`).
    pub depth_coefficient: f64,
    #[config(default = "CLASSES")]
    pub num_classes: usize,
    #[config(default = "BN_EPS")]
    pub batch_norm_eps: f64,
}

impl EfficientNetConfig {
    /// The architecture, with uninitialised (lazy) parameters.
    pub fn init(&self, device: &Device) -> EfficientNet {
        let eps = self.batch_norm_eps;
        let mut blocks = Vec::new();
        let last = STAGES.len() - 1;
        let mut channels = 32;
        for (i, &(repeats, kernel, stride, expand, input, output)) in STAGES.iter().enumerate() {
            let input = if i == 0 {
                32
            } else {
                self.round_filters(input)
            };
            let output = self.round_filters(output);
            debug_assert_eq!(input, channels);
            let repeats = if i == 0 || i == last {
                repeats
            } else {
                self.round_repeats(repeats)
            };
            blocks.push(MbConv::new(
                (input, output),
                kernel,
                stride,
                expand,
                eps,
                device,
            ));
            for _ in 1..repeats {
                blocks.push(MbConv::new(
                    (output, output),
                    kernel,
                    1,
                    expand,
                    eps,
                    device,
                ));
            }
            channels = output;
        }
        EfficientNet {
            conv_stem: conv([3, 32], 3, 2, 1, device),
            bn0: Some(batch_norm(32, eps, device)),
            blocks,
            conv_head: conv([channels, 1280], 1, 1, 1, device),
            bn1: Some(batch_norm(1280, eps, device)),
            fc: LinearConfig::new(1280, self.num_classes).init(device),
        }
    }

    /// `round_filters`: scale by the width coefficient, round to a multiple of 8, never more
    /// than 10% down.
    fn round_filters(&self, filters: usize) -> usize {
        let scaled = filters as f64 * self.width_coefficient;
        let divisor = 8usize;
        let mut rounded = divisor.max((scaled + divisor as f64 / 2.0) as usize / divisor * divisor);
        if (rounded as f64) < 0.9 * scaled {
            rounded += divisor;
        }
        rounded
    }

    /// `round_repeats`: `ceil(depth * repeats)`.
    fn round_repeats(&self, repeats: usize) -> usize {
        (self.depth_coefficient * repeats as f64).ceil() as usize
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

fn batch_norm(channels: usize, epsilon: f64, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(epsilon)
        .init(device)
}

/// `min(max(x, 0), 6)`, as two ops: flex runs `clamp` as a scalar loop (`f32::clamp`'s bound check
/// keeps it from vectorizing) and `clamp_min`/`clamp_max` as vectorized ones, 1.2-1.3x faster for
/// the whole model (BENCHMARKS.md, `models`, second round).
fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clamp_min(0.0).clamp_max(6.0)
}

/// A mobile inverted bottleneck (upstream's `MBConvBlock` without squeeze-excitation). The field
/// names are upstream's without their leading underscore, so the weights load by name.
///
/// The batch norms are `Some` as built and loaded; [`EfficientNet::fold_batch_norms`] folds each
/// into the convolution before it and leaves `None`.
#[derive(Module, Debug)]
pub struct MbConv {
    expand_conv: Option<Conv2d>,
    bn0: Option<BatchNorm>,
    depthwise_conv: Conv2d,
    bn1: Option<BatchNorm>,
    project_conv: Conv2d,
    bn2: Option<BatchNorm>,
    skip: bool,
}

impl MbConv {
    fn new(
        (input, output): (usize, usize),
        kernel: usize,
        stride: usize,
        expand: usize,
        eps: f64,
        device: &Device,
    ) -> Self {
        let hidden = input * expand;
        Self {
            expand_conv: (expand != 1).then(|| conv([input, hidden], 1, 1, 1, device)),
            bn0: (expand != 1).then(|| batch_norm(hidden, eps, device)),
            depthwise_conv: conv([hidden, hidden], kernel, stride, hidden, device),
            bn1: Some(batch_norm(hidden, eps, device)),
            project_conv: conv([hidden, output], 1, 1, 1, device),
            bn2: Some(batch_norm(output, eps, device)),
            skip: stride == 1 && input == output,
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let Some(conv) = &self.expand_conv {
            x = relu6(normed(&self.bn0, conv.forward(x)));
        }
        x = match (&self.bn1, &self.depthwise_conv.bias) {
            // Folded, on the CPU: the convolution, its bias and ReLU6 in one pass.
            (None, Some(bias)) if depthwise::applies(&x, &self.depthwise_conv.weight.val()) => {
                let (weight, stride) =
                    (self.depthwise_conv.weight.val(), self.depthwise_conv.stride);
                depthwise::depthwise_relu6(x, &weight, &bias.val(), stride[0])
            }
            _ => relu6(normed(&self.bn1, self.depthwise_conv.forward(x))),
        };
        x = normed(&self.bn2, self.project_conv.forward(x));
        if self.skip {
            x = x + input;
        }
        x
    }

    fn fold_batch_norms(mut self) -> Self {
        if let Some(conv) = self.expand_conv.take() {
            self.expand_conv = Some(fold(conv, &mut self.bn0));
        }
        self.depthwise_conv = fold(self.depthwise_conv, &mut self.bn1);
        self.project_conv = fold(self.project_conv, &mut self.bn2);
        self
    }
}

/// `x` through `bn`, or as it is once `bn` was folded away.
fn normed(bn: &Option<BatchNorm>, x: Tensor<4>) -> Tensor<4> {
    match bn {
        Some(bn) => bn.forward(x),
        None => x,
    }
}

/// Folds the inference-time batch norm `bn` (taken, leaving `None`) into `conv`, the
/// convolution before it: `bn(conv(x)) = conv'(x)` with each output channel's weights scaled by
/// `gamma / sqrt(var + eps)` and the bias `beta - mean * scale` (plus the conv's own bias, scaled).
/// One convolution with a bias instead of a convolution and four passes over its output.
fn fold(mut conv: Conv2d, bn: &mut Option<BatchNorm>) -> Conv2d {
    let Some(bn) = bn.take() else {
        return conv;
    };
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let mut bias = bn.beta.val() - bn.running_mean.value() * scale.clone();
    if let Some(own) = conv.bias.take() {
        bias = bias + own.val() * scale.clone();
    }
    let [out, ..] = conv.weight.dims();
    let weight = conv.weight.val() * scale.reshape([out, 1, 1, 1]);
    conv.weight = Param::from_tensor(weight);
    conv.bias = Some(Param::from_tensor(bias));
    conv
}

/// The network: `[n, 3, size, size]` normalised images to `[n, 1000]` logits.
#[derive(Module, Debug)]
pub struct EfficientNet {
    conv_stem: Conv2d,
    bn0: Option<BatchNorm>,
    blocks: Vec<MbConv>,
    conv_head: Conv2d,
    bn1: Option<BatchNorm>,
    fc: Linear,
}

impl EfficientNet {
    /// The architecture of `variant`, with uninitialised (lazy) parameters.
    pub fn new(variant: Variant, device: &Device) -> Self {
        variant.config().init(device)
    }

    /// Folds every batch norm into the convolution before it (inference only: the running
    /// statistics become constants). [`EfficientNet::load`] does it after loading the weights.
    pub fn fold_batch_norms(mut self) -> Self {
        self.conv_stem = fold(self.conv_stem, &mut self.bn0);
        self.conv_head = fold(self.conv_head, &mut self.bn1);
        self.blocks = self
            .blocks
            .into_iter()
            .map(MbConv::fold_batch_norms)
            .collect();
        self
    }

    /// Logits `[n, 1000]` for normalised images `[n, 3, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu6(normed(&self.bn0, self.conv_stem.forward(x)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = relu6(normed(&self.bn1, self.conv_head.forward(x)));
        let [n, c, h, w] = x.dims();
        let pooled = x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c]);
        self.fc.forward(pooled)
    }
}
