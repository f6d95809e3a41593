//! Loading a Hugging Face CLIP checkpoint (a folder with `config.json` and `model.safetensors`)
//! into [`ClipModel`].

use std::path::Path;

use burn::store::bridge::map_data;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    ModuleAdapter, ModuleContext, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};
use burn::tensor::{Device, TensorData};

use super::{ClipConfig, ClipModel};
use crate::Error;

/// Names the files in messages.
const CONFIG: &str = "the CLIP config";
const WEIGHTS: &str = "the CLIP weights";

/// [`PyTorchToBurnAdapter`] (Linear weights `[out, in]` to `[in, out]`, LayerNorm
/// `weight`/`bias` to `gamma`/`beta`), plus scalars (`logit_scale`, shape `[]` in the file) as
/// the one-element tensors Burn holds them in. Convolution weights (`[out, in, k, k]`),
/// embeddings and the class embedding have the same layout in both.
#[derive(Clone, Debug, Default)]
struct ClipAdapter;

impl ModuleAdapter for ClipAdapter {
    fn adapt(&self, tensor: PackTensor, ctx: ModuleContext<'_>) -> PackTensor {
        let tensor = if tensor.shape.is_empty() {
            let (name, dtype) = (tensor.name.clone(), tensor.dtype);
            map_data(tensor, name, dtype, [1].into(), |data: TensorData| {
                let (bytes, _, dtype) = data.into_parts();
                TensorData::from_bytes(bytes, [1], dtype)
            })
        } else {
            tensor
        };
        PyTorchToBurnAdapter.adapt(tensor, ctx)
    }

    fn get_alternative_param_name(&self, param_name: &str, container_type: &str) -> Option<String> {
        PyTorchToBurnAdapter.get_alternative_param_name(param_name, container_type)
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

impl ClipModel {
    /// Loads a Hugging Face `CLIPModel` checkpoint from the folder `dir`: `config.json` (the
    /// architecture, [`ClipConfig`]) and `model.safetensors` (its weights, PyTorch layout, as
    /// `save_pretrained` writes them, e.g. `openai/clip-vit-base-patch32`). Every parameter of
    /// the model must be in the file, with its shape; the file's extra tensors (`*.position_ids`)
    /// are not used.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, Error> {
        let config = ClipConfig::load(dir)?;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(Error::Missing {
                what: WEIGHTS.to_owned(),
                path: weights,
            });
        }
        // Burn's own checks off: `ensure_fits` reports what is missing or mis-shaped as
        // `Error::DoNotFit`.
        let mut store = SafetensorsStore::from_file(&weights)
            .with_from_adapter(ClipAdapter)
            .validate(false)
            .allow_partial(true);
        let mut model = config.init(device);
        let result = model.load_from(&mut store).map_err(|e| Error::Unloadable {
            what: WEIGHTS.to_owned(),
            path: weights.clone(),
            source: e.into(),
        })?;
        crate::weights::ensure_fits(
            &result,
            &format!("{WEIGHTS} `{}`", weights.display()),
            false,
        )?;
        Ok(model)
    }
}

impl ClipConfig {
    /// Reads and [checks](ClipConfig::check) `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let path = dir.join("config.json");
        if !path.is_file() {
            return Err(Error::Missing {
                what: CONFIG.to_owned(),
                path,
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Unloadable {
            what: CONFIG.to_owned(),
            path: path.clone(),
            source: e.into(),
        })?;
        let config: Self = serde_json::from_str(&text).map_err(|e| Error::Unloadable {
            what: CONFIG.to_owned(),
            path: path.clone(),
            source: e.into(),
        })?;
        config
            .check()
            .map_err(|problem| Error::ClipConfig { path, problem })?;
        Ok(config)
    }
}
