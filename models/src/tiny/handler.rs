//! [`TinyClassifier`], the `ModelHandler`.

use burn::tensor::{Device, Tensor, TensorData};
use tandem_runtime::inference::{Batching, DeviceRequest, Loaded, ModelHandler};

use super::{TinyMlp, CLASSES, INPUTS};
use crate::Error;

/// `run_inference(TinyClassifier::new())`: inputs `[f32; 4]`, inferences the 3 probabilities.
/// Batches of up to 32 inputs by default (`.max_batch(n)` from `HandlerExt` changes it).
#[derive(Clone, Copy, Debug, Default)]
pub struct TinyClassifier;

impl TinyClassifier {
    pub fn new() -> Self {
        Self
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
        Batching::default()
    }

    fn load(&self, choice: DeviceRequest) -> Result<Loaded<Self::Model>, String> {
        let (device, name) = crate::device::select(choice).map_err(|e| e.to_string())?;
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
            Err(Error::NotFinite {
                input: input.to_vec(),
            }
            .to_string())
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
            .map_err(|e| Error::read_back("outputs")(e).to_string())?;
        Ok(probabilities.chunks(CLASSES).map(<[f32]>::to_vec).collect())
    }
}
