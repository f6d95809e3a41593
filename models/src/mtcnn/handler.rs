//! [`Mtcnn`], the `ModelHandler` of the whole cascade: an image path in, the faces in it out.

use std::path::PathBuf;

use tandem_runtime::inference::{Batching, DeviceRequest, Loaded, ModelHandler};

use super::{Detector, Face, MtcnnConfig};
use crate::Error;

/// The MTCNN face detector as a [`ModelHandler`]: an image path in, the faces in it out. The
/// image is read and decoded in `prepare` (an unreadable or undecodable file is dead-lettered
/// alone). Batches of up to 4 images by default (`.max_batch(n)` from `HandlerExt` changes it).
#[derive(Clone, Debug, Default)]
pub struct Mtcnn {
    pub config: MtcnnConfig,
}

impl Mtcnn {
    pub fn new() -> Self {
        Self::default()
    }

    /// The model id: "mtcnn-" and the first 8 hex digits of each network's weights' sha256.
    pub fn model_id(&self) -> String {
        use crate::fetch::{ONET, PNET, RNET};
        format!(
            "mtcnn-{}{}{}",
            &PNET.sha256[..8],
            &RNET.sha256[..8],
            &ONET.sha256[..8]
        )
    }
}

impl ModelHandler for Mtcnn {
    type Input = PathBuf;
    type Prepared = image::RgbImage;
    type Inference = Vec<Face>;
    type Model = Detector;

    fn name(&self) -> String {
        "mtcnn".into()
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
            let mut detector = Detector::pretrained(&device)?;
            detector.config = self.config;
            Ok(Loaded::new(detector, device_name, self.model_id()))
        };
        load().map_err(|e| e.to_string())
    }

    fn prepare(&self, input: &Self::Input) -> Result<Self::Prepared, String> {
        crate::image_io::read_rgb(input).map_err(|e| e.to_string())
    }

    fn infer(
        &self,
        model: &mut Self::Model,
        batch: Vec<Self::Prepared>,
    ) -> Result<Vec<Self::Inference>, String> {
        batch
            .iter()
            .map(|image| model.detect(image).map_err(|e| e.to_string()))
            .collect()
    }
}
