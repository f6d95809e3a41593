//! A small classifier with deterministic weights (4 inputs, 8 hidden ReLU units, 3 softmax
//! outputs): the model the inference tests run, on flex and on wgpu. Its weights come from a
//! formula, not from training, so [`reference`] can recompute every output independently of Burn.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::Module;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use tandem_runtime::inference::{Batching, DeviceRequest, Loaded, ModelHandler};

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

impl TinyMlp {
    pub fn new(device: &Device) -> Self {
        Self {
            hidden: linear(0, INPUTS, HIDDEN, device),
            output: linear(1, HIDDEN, CLASSES, device),
        }
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

/// `run_inference(TinyClassifier::new(..))`: inputs `[f32; 4]`, inferences the 3 probabilities.
#[derive(Clone, Debug)]
pub struct TinyClassifier {
    pub batching: Batching,
}

impl TinyClassifier {
    pub fn new(max_batch: usize) -> Self {
        Self {
            batching: Batching {
                max_batch,
                ..Batching::default()
            },
        }
    }
}

impl ModelHandler for TinyClassifier {
    type Input = [f32; INPUTS];
    type Prepared = [f32; INPUTS];
    type Inference = Vec<f32>;
    type Model = (TinyMlp, Device);

    fn name(&self) -> String {
        "tiny-mlp".into()
    }

    fn batching(&self) -> Batching {
        self.batching
    }

    fn load(&self, choice: DeviceRequest) -> Result<Loaded<Self::Model>, String> {
        let (device, name) = crate::device::select(choice)?;
        Ok(Loaded::new(
            (TinyMlp::new(&device), device),
            name,
            "tiny-mlp-4x8x3",
        ))
    }

    fn prepare(&self, input: &Self::Input) -> Result<Self::Prepared, String> {
        if input.iter().all(|x| x.is_finite()) {
            Ok(*input)
        } else {
            Err(format!(
                "the input {input:?} has a value that is not a finite number"
            ))
        }
    }

    fn infer(
        &self,
        (model, device): &mut Self::Model,
        batch: Vec<Self::Prepared>,
    ) -> Result<Vec<Self::Inference>, String> {
        let n = batch.len();
        let flat: Vec<f32> = batch.into_iter().flatten().collect();
        let x = Tensor::<2>::from_data(TensorData::new(flat, [n, INPUTS]), &*device);
        let probabilities = model
            .forward(x)
            .try_into_vec_as::<f32>()
            .map_err(|e| format!("reading the outputs back failed: {e:?}"))?;
        Ok(probabilities.chunks(CLASSES).map(<[f32]>::to_vec).collect())
    }
}
