//! Loading the upstream weights (a legacy-format PyTorch `.pth` state dict) into [`EfficientNet`].

use std::path::Path;

use burn::store::{ModuleSnapshot, PytorchStore};
use burn::tensor::Device;

use super::{EfficientNet, Variant};
use crate::Error;

impl EfficientNet {
    /// Loads the upstream `.pth` (legacy torch format) into the architecture of `variant`.
    pub fn load(variant: Variant, path: &Path, device: &Device) -> Result<Self, Error> {
        let model_name = variant.name();
        if !path.is_file() {
            return Err(Error::WeightsFileMissing {
                model: model_name,
                path: path.to_owned(),
            });
        }
        let mut model = Self::new(variant, device);
        // `_blocks.3._bn1.weight` -> `blocks.3.bn1.gamma` (the adapter renames weight/bias of
        // batch norms and transposes the linear weight).
        // Partial loading lets a file of another model through to the check below, which
        // names what is missing in one paragraph (Burn's own error is a table).
        let mut store = PytorchStore::from_file(path)
            .with_key_remapping(r"(^|\.)_", "$1")
            .allow_partial(true);
        let result = model
            .load_from(&mut store)
            .map_err(|e| Error::CannotLoadWeights {
                model: model_name,
                path: path.to_owned(),
                source: e.into(),
            })?;
        let unused: Vec<String> = result
            .unused
            .iter()
            .filter(|k| !k.ends_with("num_batches_tracked"))
            .cloned()
            .collect();
        if !result.errors.is_empty() || !result.missing.is_empty() || !unused.is_empty() {
            return Err(Error::NotTheseWeights {
                model: model_name,
                path: path.to_owned(),
                missing: result.missing.iter().map(|(k, _)| k.clone()).collect(),
                unused,
                errors: result.errors.iter().map(|e| e.to_string()).collect(),
            });
        }
        // Inference only from here: each batch norm becomes its convolution's bias.
        Ok(model.fold_batch_norms())
    }
}
