//! The network: [`MiniLmConfig`] (BERT's hyperparameters, all-MiniLM-L6-v2's by default) and
//! [`MiniLmModel`], the encoder with mean pooling and normalisation.

use burn::config::Config;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor};

use crate::gelu::gelu;

// all-MiniLM-L6-v2's hyperparameters (its `config.json`): [`MiniLmConfig`]'s defaults.
pub const VOCAB: usize = 30522;
pub const HIDDEN: usize = 384;
pub const LAYERS: usize = 6;
pub const HEADS: usize = 12;
pub const INTERMEDIATE: usize = 1536;
pub const MAX_POSITIONS: usize = 512;
pub const TOKEN_TYPES: usize = 2;
pub const LAYER_NORM_EPS: f64 = 1e-12;
/// Longer inputs are truncated to this many tokens (`max_seq_length` of the sentence-transformers
/// model), `[CLS]` and `[SEP]` included.
pub const MAX_TOKENS: usize = 256;
/// The size of an embedding.
pub const DIM: usize = HIDDEN;

/// What a padded key adds to the attention scores: its weight after the softmax is exactly 0.
const MASKED: f32 = -1.0e9;

#[derive(Module, Debug)]
pub struct Embeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct SelfAttention {
    query: Linear,
    key: Linear,
    value: Linear,
}

/// A dense layer followed by the residual LayerNorm (BERT's `*Output` blocks).
#[derive(Module, Debug)]
pub struct DenseNorm {
    dense: Linear,
    layer_norm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct Attention {
    self_attn: SelfAttention,
    output: DenseNorm,
}

#[derive(Module, Debug)]
pub struct Intermediate {
    dense: Linear,
}

#[derive(Module, Debug)]
pub struct EncoderLayer {
    attention: Attention,
    intermediate: Intermediate,
    output: DenseNorm,
    heads: usize,
}

#[derive(Module, Debug)]
pub struct Encoder {
    layer: Vec<EncoderLayer>,
}

/// The BERT encoder with mean pooling and normalisation. Field names follow the upstream
/// checkpoint's (`embeddings.word_embeddings`, `encoder.layer.3.attention.output.dense`, ...), so
/// loading only renames `LayerNorm` and `attention.self` (see [`MiniLmModel::load`]).
#[derive(Module, Debug)]
pub struct MiniLmModel {
    embeddings: Embeddings,
    encoder: Encoder,
    vocab_size: usize,
    hidden_size: usize,
}

/// BERT's hyperparameters; the defaults are all-MiniLM-L6-v2's (its `config.json`).
#[derive(Config, Debug)]
pub struct MiniLmConfig {
    #[config(default = "VOCAB")]
    pub vocab_size: usize,
    #[config(default = "HIDDEN")]
    pub hidden_size: usize,
    #[config(default = "LAYERS")]
    pub num_hidden_layers: usize,
    #[config(default = "HEADS")]
    pub num_attention_heads: usize,
    #[config(default = "INTERMEDIATE")]
    pub intermediate_size: usize,
    #[config(default = "MAX_POSITIONS")]
    pub max_position_embeddings: usize,
    #[config(default = "TOKEN_TYPES")]
    pub type_vocab_size: usize,
    #[config(default = "LAYER_NORM_EPS")]
    pub layer_norm_eps: f64,
}

impl Default for MiniLmConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl MiniLmConfig {
    /// The architecture with uninitialised (lazy) parameters, to load weights into.
    pub fn init(&self, device: &Device) -> MiniLmModel {
        let hidden = self.hidden_size;
        let linear =
            |d_in: usize, d_out: usize| -> Linear { LinearConfig::new(d_in, d_out).init(device) };
        let layer_norm = || -> LayerNorm {
            LayerNormConfig::new(hidden)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let layer = (0..self.num_hidden_layers)
            .map(|_| EncoderLayer {
                attention: Attention {
                    self_attn: SelfAttention {
                        query: linear(hidden, hidden),
                        key: linear(hidden, hidden),
                        value: linear(hidden, hidden),
                    },
                    output: DenseNorm {
                        dense: linear(hidden, hidden),
                        layer_norm: layer_norm(),
                    },
                },
                intermediate: Intermediate {
                    dense: linear(hidden, self.intermediate_size),
                },
                output: DenseNorm {
                    dense: linear(self.intermediate_size, hidden),
                    layer_norm: layer_norm(),
                },
                heads: self.num_attention_heads,
            })
            .collect();
        MiniLmModel {
            embeddings: Embeddings {
                word_embeddings: EmbeddingConfig::new(self.vocab_size, hidden).init(device),
                position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, hidden)
                    .init(device),
                token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, hidden)
                    .init(device),
                layer_norm: layer_norm(),
            },
            encoder: Encoder { layer },
            vocab_size: self.vocab_size,
            hidden_size: hidden,
        }
    }
}

impl MiniLmModel {
    /// all-MiniLM-L6-v2's architecture ([`MiniLmConfig`]'s defaults) with uninitialised (lazy)
    /// parameters, to load weights into.
    pub fn new(device: &Device) -> Self {
        MiniLmConfig::new().init(device)
    }

    /// The number of token ids the model embeds.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The size of an embedding.
    pub fn dim(&self) -> usize {
        self.hidden_size
    }

    /// Unit-length sentence embeddings `[batch, 384]` for token ids `[batch, tokens]` and their
    /// attention mask (1.0 for a token, 0.0 for padding).
    pub fn forward(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> Tensor<2> {
        let [batch, tokens] = ids.dims();
        let device = ids.device();

        let positions = Tensor::<1, Int>::arange(0..tokens as i64, &device)
            .reshape([1, tokens])
            .expand([batch, tokens]);
        let types = Tensor::<2, Int>::zeros([batch, tokens], &device);
        let e = &self.embeddings;
        let mut x = e.layer_norm.forward(
            e.word_embeddings.forward(ids)
                + e.position_embeddings.forward(positions)
                + e.token_type_embeddings.forward(types),
        );

        // [batch, 1, 1, tokens]: 0 for a token, MASKED for padding, added to every score.
        let bias = mask
            .clone()
            .sub_scalar(1.0)
            .mul_scalar(-MASKED)
            .reshape([batch, 1, 1, tokens]);
        for layer in &self.encoder.layer {
            x = layer.forward(x, bias.clone());
        }

        // Mean over the real tokens, then L2 normalisation (sentence-transformers' Pooling and
        // Normalize modules, with their clamps: 1e-9 on the count, 1e-12 on the norm).
        let mask = mask.reshape([batch, tokens, 1]);
        let summed = (x * mask.clone())
            .sum_dim(1)
            .reshape([batch, self.hidden_size]);
        let counts = mask.sum_dim(1).reshape([batch, 1]).clamp_min(1e-9);
        let mean = summed / counts;
        let norm = mean
            .clone()
            .powi_scalar(2)
            .sum_dim(1)
            .sqrt()
            .clamp_min(1e-12);
        mean / norm
    }
}

impl EncoderLayer {
    fn forward(&self, x: Tensor<3>, bias: Tensor<4>) -> Tensor<3> {
        let [batch, tokens, hidden] = x.dims();
        let heads = self.heads;
        let head = hidden / heads;
        let split = |t: Tensor<3>| t.reshape([batch, tokens, heads, head]).swap_dims(1, 2);
        let a = &self.attention.self_attn;
        let q = split(a.query.forward(x.clone()));
        let k = split(a.key.forward(x.clone()));
        let v = split(a.value.forward(x.clone()));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((head as f32).sqrt()) + bias;
        let context = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, tokens, hidden]);
        let out = &self.attention.output;
        let x = out.layer_norm.forward(out.dense.forward(context) + x);
        let inner = gelu(self.intermediate.dense.forward(x.clone()));
        let out = &self.output;
        out.layer_norm.forward(out.dense.forward(inner) + x)
    }
}
