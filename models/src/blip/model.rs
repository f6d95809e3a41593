//! [`Blip`]: `BlipForConditionalGeneration`'s two halves, the vision transformer and the text
//! decoder, with the configuration they were built from.

use burn::prelude::Module;
use burn::tensor::{Device, Tensor};

use super::config::BlipConfig;
use super::text::{DecoderState, TextDecoder, Untied};
use super::vision::VisionModel;

/// BLIP for captioning. Field names follow the checkpoint's (`vision_model.*`,
/// `text_decoder.*`), so loading only renames `LayerNorm` and `attention.self` (see
/// [`Blip::load`]).
#[derive(Module, Debug)]
pub struct Blip {
    vision_model: VisionModel,
    text_decoder: TextDecoder,
    #[module(skip)]
    config: BlipConfig,
}

impl Blip {
    /// The architecture of `config` with uninitialised (lazy) parameters, to load weights into.
    /// `untied`: which of the LM head's tensors are its own (`decoder.weight` instead of the
    /// word embeddings, `decoder.bias` instead of `cls.predictions.bias`).
    pub fn init(config: &BlipConfig, untied: Untied, device: &Device) -> Self {
        Self {
            vision_model: VisionModel::init(
                &config.vision_config,
                config.vision_activation(),
                device,
            ),
            text_decoder: TextDecoder::init(
                &config.text_config,
                config.text_activation(),
                untied,
                device,
            ),
            config: config.clone(),
        }
    }

    pub fn config(&self) -> &BlipConfig {
        &self.config
    }

    pub fn vision(&self) -> &VisionModel {
        &self.vision_model
    }

    pub fn decoder(&self) -> &TextDecoder {
        &self.text_decoder
    }

    /// The side of the square images the vision model takes (`vision_config.image_size`).
    pub fn image_size(&self) -> usize {
        self.vision_model.image_size()
    }

    /// The image embeddings (the vision model's last hidden state after `post_layernorm`),
    /// `[batch, 1 + patches, vision hidden]`, for pixel values `[batch, 3, size, size]`.
    pub fn image_embeds(&self, pixels: Tensor<4>) -> Tensor<3> {
        self.vision_model.forward(pixels)
    }

    /// A decoding state for image embeddings (see [`TextDecoder::start`]).
    pub fn start(&self, image_embeds: Tensor<3>) -> DecoderState {
        self.text_decoder.start(image_embeds)
    }
}
