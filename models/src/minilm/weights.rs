//! Loading the upstream weights (`model.safetensors`) into [`MiniLmModel`].

use std::path::Path;

use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::Device;

use super::MiniLmModel;
use crate::Error;

/// Names the weights in messages.
const WHAT: &str = "the all-MiniLM-L6-v2 weights";

impl MiniLmModel {
    /// Loads the upstream `model.safetensors` (PyTorch layout: Linear weights `[out, in]`, norms
    /// `weight`/`bias`) into all-MiniLM-L6-v2's architecture. Every parameter of the model must
    /// be in the file; the file's extra tensors (`pooler.*`, `embeddings.position_ids`) are not
    /// used.
    pub fn load(weights: &Path, device: &Device) -> Result<Self, Error> {
        if !weights.is_file() {
            return Err(Error::Missing {
                what: WHAT.to_owned(),
                path: weights.to_owned(),
            });
        }
        let mut store = SafetensorsStore::from_file(weights)
            .with_key_remapping(r"\.LayerNorm\.", ".layer_norm.")
            .with_key_remapping(r"\.attention\.self\.", ".attention.self_attn.")
            .with_from_adapter(PyTorchToBurnAdapter);
        let mut model = Self::new(device);
        let result = model.load_from(&mut store).map_err(|e| Error::Unloadable {
            what: WHAT.to_owned(),
            path: weights.to_owned(),
            source: e.into(),
        })?;
        crate::weights::ensure_fits(&result, &format!("{WHAT} `{}`", weights.display()), false)?;
        Ok(model)
    }
}
