//! [`BlipConfig`]: the hyperparameters, read from a Hugging Face `config.json`
//! (`BlipForConditionalGeneration`), with transformers' defaults (`configuration_blip.py`) for the
//! fields a file leaves out.

use std::path::Path;

use serde::Deserialize;

use crate::Error;

/// An activation function named by `hidden_act`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `"gelu"`: the exact (erf) GELU, BLIP's.
    Gelu,
    /// `"gelu_new"`, `"gelu_pytorch_tanh"`: the tanh approximation.
    GeluTanh,
    /// `"relu"`.
    Relu,
}

impl Activation {
    /// The activation transformers' `ACT2FN[name]` is, where it is one of these.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Some(Self::GeluTanh),
            "relu" => Some(Self::Relu),
            _ => None,
        }
    }

    pub(crate) fn apply<const D: usize>(
        self,
        x: burn::tensor::Tensor<D>,
    ) -> burn::tensor::Tensor<D> {
        use burn::tensor::activation::{gelu_approximate, relu};
        match self {
            Self::Gelu => crate::gelu::gelu(x),
            Self::GeluTanh => gelu_approximate(x),
            Self::Relu => relu(x),
        }
    }
}

/// The vision transformer's hyperparameters (`BlipVisionConfig`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct BlipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
}

impl Default for BlipVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            image_size: 384,
            patch_size: 16,
            hidden_act: "gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

/// The text decoder's hyperparameters (`BlipTextConfig`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct BlipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    /// The size of the image embeddings the cross-attention reads. transformers overwrites it
    /// with the vision model's `hidden_size` (`BlipConfig.__post_init__`); so does
    /// [`BlipConfig::from_json`].
    pub encoder_hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
    /// `[DEC]`, the first token of every caption.
    pub bos_token_id: u32,
    pub pad_token_id: u32,
    /// `[SEP]`: generation stops at it (BLIP's `generate` passes it as the eos).
    pub sep_token_id: u32,
    pub tie_word_embeddings: bool,
}

impl Default for BlipTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 30524,
            hidden_size: 768,
            encoder_hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 512,
            hidden_act: "gelu".into(),
            layer_norm_eps: 1e-12,
            bos_token_id: 30522,
            pad_token_id: 0,
            sep_token_id: 102,
            tie_word_embeddings: true,
        }
    }
}

/// `BlipConfig`: the vision and text configs (other fields of the file are not used). The
/// default is transformers' `BlipConfig()`; a checkpoint's `config.json` says more.
#[derive(Clone, Debug)]
pub struct BlipConfig {
    pub vision_config: BlipVisionConfig,
    pub text_config: BlipTextConfig,
    /// Whether the LM head's weight may be the word embeddings, where the file has no
    /// `text_decoder.cls.predictions.decoder.weight` (false when the top level or the text
    /// config says false).
    pub tie_word_embeddings: bool,
}

impl Default for BlipConfig {
    fn default() -> Self {
        Self {
            vision_config: BlipVisionConfig::default(),
            text_config: BlipTextConfig::default(),
            tie_word_embeddings: true,
        }
    }
}

/// Names the config in messages.
const WHAT: &str = "the BLIP config";

impl BlipConfig {
    /// Parses a `config.json` and checks it ([`BlipConfig::validate`]).
    pub fn from_json(text: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            vision_config: BlipVisionConfig,
            #[serde(default)]
            text_config: BlipTextConfig,
            #[serde(default = "yes")]
            tie_word_embeddings: bool,
        }
        fn yes() -> bool {
            true
        }
        let raw: Raw = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut config = BlipConfig {
            vision_config: raw.vision_config,
            text_config: raw.text_config,
            tie_word_embeddings: raw.tie_word_embeddings,
        };
        config.tie_word_embeddings &= config.text_config.tie_word_embeddings;
        config.text_config.encoder_hidden_size = config.vision_config.hidden_size;
        config.validate()?;
        Ok(config)
    }

    /// Reads and checks `path` (a `config.json`).
    pub fn load(path: &Path) -> Result<Self, Error> {
        if !path.is_file() {
            return Err(Error::Missing {
                what: WHAT.to_owned(),
                path: path.to_owned(),
            });
        }
        let unloadable = |source: crate::BoxError| Error::Unloadable {
            what: WHAT.to_owned(),
            path: path.to_owned(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(|e| unloadable(e.into()))?;
        Self::from_json(&text).map_err(|e| unloadable(e.into()))
    }

    /// The checks transformers makes (heads divide the hidden sizes, the patch size divides the
    /// image size), plus: the activations are ones this port has, and the token ids are in the
    /// vocabulary.
    pub fn validate(&self) -> Result<(), String> {
        let v = &self.vision_config;
        let t = &self.text_config;
        for (part, act) in [
            ("vision_config", &v.hidden_act),
            ("text_config", &t.hidden_act),
        ] {
            if Activation::from_name(act).is_none() {
                return Err(format!(
                    "{part}.hidden_act {act:?} is not supported (supported: \"gelu\", \"gelu_new\", \"gelu_pytorch_tanh\", \"relu\")"
                ));
            }
        }
        let positive = [
            ("vision_config.hidden_size", v.hidden_size),
            ("vision_config.num_attention_heads", v.num_attention_heads),
            ("vision_config.patch_size", v.patch_size),
            ("vision_config.image_size", v.image_size),
            ("vision_config.intermediate_size", v.intermediate_size),
            ("text_config.hidden_size", t.hidden_size),
            ("text_config.num_attention_heads", t.num_attention_heads),
            ("text_config.vocab_size", t.vocab_size),
            (
                "text_config.max_position_embeddings",
                t.max_position_embeddings,
            ),
            ("text_config.intermediate_size", t.intermediate_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, n)| *n == 0) {
            return Err(format!("{name} is 0"));
        }
        if !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return Err(format!(
                "vision_config.hidden_size {} is not a multiple of num_attention_heads {}",
                v.hidden_size, v.num_attention_heads
            ));
        }
        if !t.hidden_size.is_multiple_of(t.num_attention_heads) {
            return Err(format!(
                "text_config.hidden_size {} is not a multiple of num_attention_heads {}",
                t.hidden_size, t.num_attention_heads
            ));
        }
        if !v.image_size.is_multiple_of(v.patch_size) {
            return Err(format!(
                "vision_config.image_size {} is not a multiple of patch_size {}",
                v.image_size, v.patch_size
            ));
        }
        for (name, id) in [
            ("bos_token_id", t.bos_token_id),
            ("pad_token_id", t.pad_token_id),
            ("sep_token_id", t.sep_token_id),
        ] {
            if id as usize >= t.vocab_size {
                return Err(format!(
                    "text_config.{name} {id} is outside the vocabulary ({})",
                    t.vocab_size
                ));
            }
        }
        Ok(())
    }

    /// The vision activation (validated).
    pub fn vision_activation(&self) -> Activation {
        Activation::from_name(&self.vision_config.hidden_act).unwrap_or(Activation::Gelu)
    }

    /// The text activation (validated).
    pub fn text_activation(&self) -> Activation {
        Activation::from_name(&self.text_config.hidden_act).unwrap_or(Activation::Gelu)
    }

    /// Patches along one side of the image.
    pub fn grid(&self) -> usize {
        self.vision_config.image_size / self.vision_config.patch_size
    }

    /// The image embeddings per image: the class token and one per patch.
    pub fn image_tokens(&self) -> usize {
        self.grid() * self.grid() + 1
    }
}
