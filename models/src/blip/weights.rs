//! Loading a Hugging Face `BlipForConditionalGeneration` folder (`config.json`,
//! `model.safetensors`) into [`Blip`].

use std::io::Read;
use std::path::Path;

use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::Device;

use super::config::BlipConfig;
use super::model::Blip;
use super::text::Untied;
use crate::Error;

/// Names the weights in messages.
const WHAT: &str = "the BLIP weights";
/// The LM head's own weight and bias, which tied checkpoints may leave out.
const DECODER_WEIGHT: &str = "text_decoder.cls.predictions.decoder.weight";
const DECODER_BIAS: &str = "text_decoder.cls.predictions.decoder.bias";

impl Blip {
    /// Loads `dir/config.json` and `dir/model.safetensors` (a `save_pretrained` of
    /// `BlipForConditionalGeneration`, PyTorch layout). Every parameter of the model must be in
    /// the file; tensors it does not use (buffers such as `position_ids`, the other BLIP heads)
    /// are ignored. The LM head uses `text_decoder.cls.predictions.decoder.weight` and
    /// `.decoder.bias` where the file has them, else the word embeddings and
    /// `cls.predictions.bias` (tied, as transformers does; with `tie_word_embeddings: false` the
    /// file must have them).
    pub fn load(dir: &Path, device: &Device) -> Result<Self, Error> {
        let config = BlipConfig::load(&dir.join("config.json"))?;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(Error::Missing {
                what: WHAT.to_owned(),
                path: weights,
            });
        }
        let unloadable = |source: crate::BoxError| Error::Unloadable {
            what: WHAT.to_owned(),
            path: weights.clone(),
            source,
        };
        let names = safetensors_names(&weights).map_err(unloadable)?;
        let has = |name: &str| names.iter().any(|n| n == name);
        let untied = Untied {
            weight: has(DECODER_WEIGHT) || !config.tie_word_embeddings,
            bias: has(DECODER_BIAS) || !config.tie_word_embeddings,
        };
        let mut model = Self::init(&config, untied, device);
        let mut store = SafetensorsStore::from_file(&weights)
            .with_key_remapping(r"\.LayerNorm\.", ".layer_norm.")
            .with_key_remapping(r"\.self\.", ".self_attn.")
            .with_from_adapter(PyTorchToBurnAdapter)
            .allow_partial(true);
        let result = model
            .load_from(&mut store)
            .map_err(|e| unloadable(e.into()))?;
        crate::weights::ensure_fits(&result, &format!("{WHAT} `{}`", weights.display()), false)?;
        Ok(model)
    }
}

/// The tensor names in a safetensors file's header.
fn safetensors_names(path: &Path) -> Result<Vec<String>, crate::BoxError> {
    let mut file = std::fs::File::open(path)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)?;
    let len = u64::from_le_bytes(len);
    let size = file.metadata()?.len();
    if len > size.saturating_sub(8) || len > 100 << 20 {
        return Err(format!("not a safetensors file (a header of {len} bytes in {size})").into());
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| format!("not a safetensors file (header: {e})"))?;
    Ok(header
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k != "__metadata__")
        .collect())
}
