//! The network ([`TinyMlp`], [`TinyMlpConfig`]) and its plain-Rust [`reference`].

use burn::config::Config;
use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::Module;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor, TensorData};

pub const INPUTS: usize = 4;
pub const HIDDEN: usize = 8;
pub const CLASSES: usize = 3;

/// The weights, row-major `[in, out]` as Burn's `Linear` keeps them.
fn weight(layer: usize, i: usize, j: usize, outputs: usize) -> f32 {
    (((layer * 97 + i * outputs + j) as f32) * 0.37).sin() * 0.6
}

fn bias(layer: usize, j: usize) -> f32 {
    (((layer * 31 + j) as f32) * 0.53).cos() * 0.1
}

fn linear(layer: usize, inputs: usize, outputs: usize, device: &Device) -> Linear {
    let w: Vec<f32> = (0..inputs)
        .flat_map(|i| (0..outputs).map(move |j| weight(layer, i, j, outputs)))
        .collect();
    let b: Vec<f32> = (0..outputs).map(|j| bias(layer, j)).collect();
    Linear {
        weight: Param::from_tensor(Tensor::<2>::from_data(
            TensorData::new(w, [inputs, outputs]),
            device,
        )),
        bias: Some(Param::from_tensor(Tensor::<1>::from_data(
            TensorData::new(b, [outputs]),
            device,
        ))),
    }
}

#[derive(Module, Debug)]
pub struct TinyMlp {
    hidden: Linear,
    output: Linear,
}

/// The classifier's sizes (4 inputs, 8 hidden units, 3 classes by default). The weights are a
/// formula of the layer and the position, so any sizes give a deterministic model.
#[derive(Config, Debug)]
pub struct TinyMlpConfig {
    #[config(default = "INPUTS")]
    pub inputs: usize,
    #[config(default = "HIDDEN")]
    pub hidden: usize,
    #[config(default = "CLASSES")]
    pub classes: usize,
}

impl TinyMlpConfig {
    /// The model, its weights set (they come from a formula).
    pub fn init(&self, device: &Device) -> TinyMlp {
        TinyMlp {
            hidden: linear(0, self.inputs, self.hidden, device),
            output: linear(1, self.hidden, self.classes, device),
        }
    }
}

impl TinyMlp {
    /// The 4x8x3 classifier the tests run ([`TinyMlpConfig`]'s defaults).
    pub fn new(device: &Device) -> Self {
        TinyMlpConfig::new().init(device)
    }

    /// Class probabilities for a batch `[n, 4]`: `[n, 3]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        softmax(self.output.forward(relu(self.hidden.forward(x))), 1)
    }
}

/// The same network computed in plain Rust (f64), to check Burn's outputs against.
pub fn reference(x: [f32; INPUTS]) -> [f64; CLASSES] {
    let hidden: Vec<f64> = (0..HIDDEN)
        .map(|j| {
            let z = f64::from(bias(0, j))
                + (0..INPUTS)
                    .map(|i| f64::from(x[i]) * f64::from(weight(0, i, j, HIDDEN)))
                    .sum::<f64>();
            z.max(0.0)
        })
        .collect();
    let logits: Vec<f64> = (0..CLASSES)
        .map(|j| {
            f64::from(bias(1, j))
                + (0..HIDDEN)
                    .map(|i| hidden[i] * f64::from(weight(1, i, j, CLASSES)))
                    .sum::<f64>()
        })
        .collect();
    let max = logits.iter().cloned().fold(f64::MIN, f64::max);
    let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    [exp[0] / total, exp[1] / total, exp[2] / total]
}
