//! The three networks, [`PNet`], [`RNet`] and [`ONet`], and what each gives.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PRelu, PReluConfig};
use burn::prelude::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

use super::pool::max_pool;

/// The side of R-Net's input crops.
pub const RNET_SIZE: usize = 24;
/// The side of O-Net's input crops.
pub const ONET_SIZE: usize = 48;

fn conv(c_in: usize, c_out: usize, kernel: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [kernel, kernel]).init(device)
}

fn prelu(channels: usize, device: &Device) -> PRelu {
    PReluConfig::new()
        .with_num_parameters(channels)
        .init(device)
}

/// `nn.MaxPool2d(kernel, stride, ceil_mode=True)`.
fn pool(kernel: usize, stride: usize) -> MaxPool2d {
    MaxPool2dConfig::new([kernel, kernel])
        .with_strides([stride, stride])
        .with_ceil_mode(true)
        .init()
}

fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).init(device)
}

/// `[n, c, h, w]` -> `[n, w * h * c]` in upstream's order: `permute(0, 3, 2, 1)` then flatten.
fn flatten_whc(x: Tensor<4>) -> Tensor<2> {
    let [n, c, h, w] = x.dims();
    x.permute([0, 3, 2, 1]).reshape([n, w * h * c])
}

/// The proposal network: fully convolutional, 12x12 receptive field at stride 2.
#[derive(Module, Debug)]
pub struct PNet {
    conv1: Conv2d,
    prelu1: PRelu,
    pool1: MaxPool2d,
    conv2: Conv2d,
    prelu2: PRelu,
    conv3: Conv2d,
    prelu3: PRelu,
    conv4_1: Conv2d,
    conv4_2: Conv2d,
}

/// What [`PNet::forward`] gives: per output cell, box offsets and face probabilities.
#[derive(Debug, Clone)]
pub struct PNetOutput {
    /// `[n, 4, h', w']`: box offsets (x1, y1, x2, y2), in units of the 12-pixel window.
    pub boxes: Tensor<4>,
    /// `[n, 2, h', w']`: softmax over the channels; channel 1 is the face probability.
    pub probs: Tensor<4>,
}

impl PNet {
    /// The architecture with uninitialised (lazy) parameters, to load weights into.
    pub fn new(device: &Device) -> Self {
        Self {
            conv1: conv(3, 10, 3, device),
            prelu1: prelu(10, device),
            pool1: pool(2, 2),
            conv2: conv(10, 16, 3, device),
            prelu2: prelu(16, device),
            conv3: conv(16, 32, 3, device),
            prelu3: prelu(32, device),
            conv4_1: conv(32, 2, 1, device),
            conv4_2: conv(32, 4, 1, device),
        }
    }

    /// For normalised images `[n, 3, h, w]` (h, w >= 12).
    pub fn forward(&self, x: Tensor<4>) -> PNetOutput {
        let x = self.prelu1.forward(self.conv1.forward(x));
        let x = max_pool(&self.pool1, x);
        let x = self.prelu2.forward(self.conv2.forward(x));
        let x = self.prelu3.forward(self.conv3.forward(x));
        PNetOutput {
            boxes: self.conv4_2.forward(x.clone()),
            probs: softmax(self.conv4_1.forward(x), 1),
        }
    }
}

/// The refinement network, on 24x24 crops.
#[derive(Module, Debug)]
pub struct RNet {
    conv1: Conv2d,
    prelu1: PRelu,
    pool1: MaxPool2d,
    conv2: Conv2d,
    prelu2: PRelu,
    pool2: MaxPool2d,
    conv3: Conv2d,
    prelu3: PRelu,
    dense4: Linear,
    prelu4: PRelu,
    dense5_1: Linear,
    dense5_2: Linear,
}

/// What [`RNet::forward`] gives, one row per crop.
#[derive(Debug, Clone)]
pub struct RNetOutput {
    /// `[n, 4]`: box offsets (x1, y1, x2, y2), relative to the crop's box size.
    pub boxes: Tensor<2>,
    /// `[n, 2]`: softmax; column 1 is the face probability.
    pub probs: Tensor<2>,
}

impl RNet {
    /// The architecture with uninitialised (lazy) parameters, to load weights into.
    pub fn new(device: &Device) -> Self {
        Self {
            conv1: conv(3, 28, 3, device),
            prelu1: prelu(28, device),
            pool1: pool(3, 2),
            conv2: conv(28, 48, 3, device),
            prelu2: prelu(48, device),
            pool2: pool(3, 2),
            conv3: conv(48, 64, 2, device),
            prelu3: prelu(64, device),
            dense4: linear(576, 128, device),
            prelu4: prelu(128, device),
            dense5_1: linear(128, 2, device),
            dense5_2: linear(128, 4, device),
        }
    }

    /// For normalised crops `[n, 3, 24, 24]`.
    pub fn forward(&self, x: Tensor<4>) -> RNetOutput {
        let x = self.prelu1.forward(self.conv1.forward(x));
        let x = max_pool(&self.pool1, x);
        let x = self.prelu2.forward(self.conv2.forward(x));
        let x = max_pool(&self.pool2, x);
        let x = self.prelu3.forward(self.conv3.forward(x));
        let x = self.prelu4.forward(self.dense4.forward(flatten_whc(x)));
        RNetOutput {
            boxes: self.dense5_2.forward(x.clone()),
            probs: softmax(self.dense5_1.forward(x), 1),
        }
    }
}

/// The output network, on 48x48 crops.
#[derive(Module, Debug)]
pub struct ONet {
    conv1: Conv2d,
    prelu1: PRelu,
    pool1: MaxPool2d,
    conv2: Conv2d,
    prelu2: PRelu,
    pool2: MaxPool2d,
    conv3: Conv2d,
    prelu3: PRelu,
    pool3: MaxPool2d,
    conv4: Conv2d,
    prelu4: PRelu,
    dense5: Linear,
    prelu5: PRelu,
    dense6_1: Linear,
    dense6_2: Linear,
    dense6_3: Linear,
}

/// What [`ONet::forward`] gives, one row per crop.
#[derive(Debug, Clone)]
pub struct ONetOutput {
    /// `[n, 4]`: box offsets (x1, y1, x2, y2), relative to the crop's box size.
    pub boxes: Tensor<2>,
    /// `[n, 10]`: five landmarks, x1..x5 then y1..y5, as fractions of the box's width/height.
    pub landmarks: Tensor<2>,
    /// `[n, 2]`: softmax; column 1 is the face probability.
    pub probs: Tensor<2>,
}

impl ONet {
    /// The architecture with uninitialised (lazy) parameters, to load weights into.
    pub fn new(device: &Device) -> Self {
        Self {
            conv1: conv(3, 32, 3, device),
            prelu1: prelu(32, device),
            pool1: pool(3, 2),
            conv2: conv(32, 64, 3, device),
            prelu2: prelu(64, device),
            pool2: pool(3, 2),
            conv3: conv(64, 64, 3, device),
            prelu3: prelu(64, device),
            pool3: pool(2, 2),
            conv4: conv(64, 128, 2, device),
            prelu4: prelu(128, device),
            dense5: linear(1152, 256, device),
            prelu5: prelu(256, device),
            dense6_1: linear(256, 2, device),
            dense6_2: linear(256, 4, device),
            dense6_3: linear(256, 10, device),
        }
    }

    /// For normalised crops `[n, 3, 48, 48]`.
    pub fn forward(&self, x: Tensor<4>) -> ONetOutput {
        let x = self.prelu1.forward(self.conv1.forward(x));
        let x = max_pool(&self.pool1, x);
        let x = self.prelu2.forward(self.conv2.forward(x));
        let x = max_pool(&self.pool2, x);
        let x = self.prelu3.forward(self.conv3.forward(x));
        let x = max_pool(&self.pool3, x);
        let x = self.prelu4.forward(self.conv4.forward(x));
        let x = self.prelu5.forward(self.dense5.forward(flatten_whc(x)));
        ONetOutput {
            boxes: self.dense6_2.forward(x.clone()),
            landmarks: self.dense6_3.forward(x.clone()),
            probs: softmax(self.dense6_1.forward(x), 1),
        }
    }
}
