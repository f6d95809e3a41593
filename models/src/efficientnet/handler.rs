//! [`EfficientNetLite`], the `ModelHandler`: an image path in, a [`Classification`] out.

use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use tandem_runtime::inference::{Batching, DeviceRequest, Loaded, ModelHandler};

use super::{imagenet_labels, prepare_rgb, top_k, Classification, EfficientNet, Variant, CLASSES};
use crate::Error;

/// `run_inference(EfficientNetLite::lite0())`: inputs are image **paths** (what a pipeline over a
/// folder of photos reads; a result keeps its path, not the image bytes), read and decoded in
/// `prepare` (an unreadable or undecodable file is dead-lettered alone); inferences are a
/// [`Classification`]. Batches of up to 8 images by default (`.max_batch(n)` from `HandlerExt`
/// changes it).
#[derive(Clone, Debug)]
pub struct EfficientNetLite {
    pub variant: Variant,
    /// How many classes each [`Classification`] lists (5 by default).
    pub top_k: usize,
    /// Weights to load instead of the pretrained ones (a PyTorch state dict of the variant).
    pub weights: Option<PathBuf>,
}

impl EfficientNetLite {
    pub fn new(variant: Variant) -> Self {
        Self {
            variant,
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
        Batching {
            max_batch: 8,
            ..Batching::default()
        }
    }

    fn load(&self, choice: DeviceRequest) -> Result<Loaded<Self::Model>, String> {
        self.load_on(choice).map_err(|e| e.to_string())
    }

    fn prepare(&self, input: &Self::Input) -> Result<Self::Prepared, String> {
        let rgb = crate::image_io::read_rgb(input).map_err(|e| e.to_string())?;
        Ok(prepare_rgb(&rgb, self.variant.input_size()))
    }

    fn infer(
        &self,
        model: &mut Self::Model,
        batch: Vec<Self::Prepared>,
    ) -> Result<Vec<Self::Inference>, String> {
        self.classify(model, batch).map_err(|e| e.to_string())
    }
}

impl EfficientNetLite {
    /// [`ModelHandler::load`], with the crate's error.
    fn load_on(&self, choice: DeviceRequest) -> Result<Loaded<LoadedLite>, Error> {
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

    /// [`ModelHandler::infer`], with the crate's error.
    fn classify(
        &self,
        model: &LoadedLite,
        batch: Vec<Vec<f32>>,
    ) -> Result<Vec<Classification>, Error> {
        let n = batch.len();
        let size = self.variant.input_size();
        let flat: Vec<f32> = batch.into_iter().flatten().collect();
        if flat.len() != n * 3 * size * size {
            return Err(Error::PreparedSize {
                model: self.variant.name(),
            });
        }
        let x = Tensor::<4>::from_data(TensorData::new(flat, [n, 3, size, size]), &model.device);
        let logits = model
            .network
            .forward(x)
            .try_into_vec_as::<f32>()
            .map_err(Error::read_back("logits"))?;
        Ok(logits
            .chunks(CLASSES)
            .map(|l| Classification {
                top: top_k(l, &model.labels, self.top_k),
                logits: l.to_vec(),
            })
            .collect())
    }
}
