//! The text decoder (`BlipTextLMHeadModel`, `text_decoder.*`): a BERT with causal
//! self-attention, cross-attention to the image embeddings after it in every layer, and the
//! masked-LM head as the next-token head. Decoding keeps a [`DecoderState`]: the self-attention
//! keys and values of the tokens so far (appended at each step) and the cross-attention keys and
//! values of the images (computed once).

use burn::module::Param;
use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::prelude::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Int, Tensor};

use super::config::{Activation, BlipTextConfig};

/// `query`, `key`, `value` (`attention.self.*`, `crossattention.self.*` upstream).
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

/// `bert.encoder.layer.N`: causal self-attention, cross-attention, feed-forward.
#[derive(Module, Debug)]
pub struct TextLayer {
    attention: Attention,
    crossattention: Attention,
    intermediate: Intermediate,
    output: DenseNorm,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    activation: Activation,
}

#[derive(Module, Debug)]
pub struct TextEncoder {
    layer: Vec<TextLayer>,
}

#[derive(Module, Debug)]
pub struct TextEmbeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    layer_norm: LayerNorm,
}

/// `text_decoder.bert` (no pooler).
#[derive(Module, Debug)]
pub struct TextModel {
    embeddings: TextEmbeddings,
    encoder: TextEncoder,
}

/// `cls.predictions.transform`: dense, activation, LayerNorm.
#[derive(Module, Debug)]
pub struct HeadTransform {
    dense: Linear,
    layer_norm: LayerNorm,
    #[module(skip)]
    activation: Activation,
}

/// `cls.predictions.decoder`, where the file has its own weight or bias (untied).
#[derive(Module, Debug)]
pub struct HeadDecoder {
    /// `[vocab, hidden]`, as the word embeddings.
    weight: Option<Param<Tensor<2>>>,
    bias: Option<Param<Tensor<1>>>,
}

/// `cls.predictions`: the transform, then the vocabulary projection: `decoder.weight` where the
/// model has one, else the word embeddings (tied), plus `decoder.bias` where the model has one,
/// else `bias` (tied).
#[derive(Module, Debug)]
pub struct Predictions {
    transform: HeadTransform,
    bias: Option<Param<Tensor<1>>>,
    decoder: HeadDecoder,
}

/// Which of the LM head's tensors are its own rather than tied: the projection's weight (else
/// the word embeddings), its bias (else `cls.predictions.bias`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Untied {
    pub weight: bool,
    pub bias: bool,
}

#[derive(Module, Debug)]
pub struct Cls {
    predictions: Predictions,
}

/// `text_decoder`: the BERT decoder and its LM head.
#[derive(Module, Debug)]
pub struct TextDecoder {
    bert: TextModel,
    cls: Cls,
    #[module(skip)]
    vocab_size: usize,
    #[module(skip)]
    max_positions: usize,
}

/// The keys and values decoding reuses, `[rows, heads, tokens, head size]` per layer.
#[derive(Clone, Debug)]
pub struct DecoderState {
    /// Self-attention: one entry per token so far (empty before the first step).
    self_kv: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// Cross-attention: one entry per image embedding, fixed.
    cross_kv: Vec<(Tensor<4>, Tensor<4>)>,
    /// Tokens so far: the position of the next one.
    len: usize,
}

impl DecoderState {
    /// The tokens decoded so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token was decoded yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps row `rows[i]` as row `i` (beam search's reordering; also expands a state per image
    /// to one per beam or sample).
    pub fn select_rows(&mut self, rows: Tensor<1, Int>) {
        for kv in self.self_kv.iter_mut().flatten() {
            kv.0 = kv.0.clone().select(0, rows.clone());
            kv.1 = kv.1.clone().select(0, rows.clone());
        }
        for kv in &mut self.cross_kv {
            kv.0 = kv.0.clone().select(0, rows.clone());
            kv.1 = kv.1.clone().select(0, rows.clone());
        }
    }

    /// [`DecoderState::select_rows`] for the self-attention only: rows that keep their image.
    pub fn select_self_rows(&mut self, rows: Tensor<1, Int>) {
        for kv in self.self_kv.iter_mut().flatten() {
            kv.0 = kv.0.clone().select(0, rows.clone());
            kv.1 = kv.1.clone().select(0, rows.clone());
        }
    }
}

impl TextDecoder {
    /// The architecture of `config` with uninitialised (lazy) parameters; `untied` says which
    /// of the LM head's tensors it has of its own.
    pub fn init(
        config: &BlipTextConfig,
        activation: Activation,
        untied: Untied,
        device: &Device,
    ) -> Self {
        let hidden = config.hidden_size;
        let linear = |d_in: usize, d_out: usize| LinearConfig::new(d_in, d_out).init(device);
        let layer_norm = || {
            LayerNormConfig::new(hidden)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        let dense_norm = |d_in: usize| DenseNorm {
            dense: linear(d_in, hidden),
            layer_norm: layer_norm(),
        };
        let attention = |kv_in: usize| Attention {
            self_attn: SelfAttention {
                query: linear(hidden, hidden),
                key: linear(kv_in, hidden),
                value: linear(kv_in, hidden),
            },
            output: dense_norm(hidden),
        };
        let layer = (0..config.num_hidden_layers)
            .map(|_| TextLayer {
                attention: attention(hidden),
                crossattention: attention(config.encoder_hidden_size),
                intermediate: Intermediate {
                    dense: linear(hidden, config.intermediate_size),
                },
                output: dense_norm(config.intermediate_size),
                heads: config.num_attention_heads,
                activation,
            })
            .collect();
        TextDecoder {
            bert: TextModel {
                embeddings: TextEmbeddings {
                    word_embeddings: EmbeddingConfig::new(config.vocab_size, hidden).init(device),
                    position_embeddings: EmbeddingConfig::new(
                        config.max_position_embeddings,
                        hidden,
                    )
                    .init(device),
                    layer_norm: layer_norm(),
                },
                encoder: TextEncoder { layer },
            },
            cls: Cls {
                predictions: Predictions {
                    transform: HeadTransform {
                        dense: linear(hidden, hidden),
                        layer_norm: layer_norm(),
                        activation,
                    },
                    bias: (!untied.bias)
                        .then(|| Initializer::Zeros.init([config.vocab_size], device)),
                    decoder: HeadDecoder {
                        weight: untied
                            .weight
                            .then(|| Initializer::Zeros.init([config.vocab_size, hidden], device)),
                        bias: untied
                            .bias
                            .then(|| Initializer::Zeros.init([config.vocab_size], device)),
                    },
                },
            },
            vocab_size: config.vocab_size,
            max_positions: config.max_position_embeddings,
        }
    }

    /// The number of token ids.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The most tokens a sequence can have (the position embeddings).
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// A state with no token yet, for image embeddings `[rows, image tokens, vision hidden]`: the
    /// cross-attention keys and values of every layer.
    pub fn start(&self, image_embeds: Tensor<3>) -> DecoderState {
        let cross_kv = self
            .bert
            .encoder
            .layer
            .iter()
            .map(|layer| {
                let a = &layer.crossattention.self_attn;
                let split = |t: Tensor<3>| split_heads(t, layer.heads);
                (
                    split(a.key.forward(image_embeds.clone())),
                    split(a.value.forward(image_embeds.clone())),
                )
            })
            .collect();
        DecoderState {
            self_kv: vec![None; self.bert.encoder.layer.len()],
            cross_kv,
            len: 0,
        }
    }

    /// Runs `ids` (`[rows, new tokens]`, at positions `state.len()..`) through the decoder,
    /// appends their keys and values to `state` and returns the logits at the last new token,
    /// `[rows, vocab]`. The new tokens attend causally to each other and to every earlier one.
    pub fn step(&self, ids: Tensor<2, Int>, state: &mut DecoderState) -> Tensor<2> {
        let [rows, tokens] = ids.dims();
        let device = ids.device();
        let start = state.len;
        let e = &self.bert.embeddings;
        let positions = Tensor::<1, Int>::arange(start as i64..(start + tokens) as i64, &device)
            .reshape([1, tokens])
            .expand([rows, tokens]);
        let mut x = e
            .layer_norm
            .forward(e.word_embeddings.forward(ids) + e.position_embeddings.forward(positions));
        // Key j (of start + tokens) is hidden from new token i where j > start + i.
        let mask = (tokens > 1).then(|| {
            Tensor::<2, Bool>::tril_mask([tokens, start + tokens], start as i64, &device)
                .reshape([1, 1, tokens, start + tokens])
                .expand([rows, 1, tokens, start + tokens])
        });
        for (i, layer) in self.bert.encoder.layer.iter().enumerate() {
            x = layer.forward(x, mask.clone(), &mut state.self_kv[i], &state.cross_kv[i]);
        }
        state.len += tokens;
        let [_, _, hidden] = x.dims();
        let last = x.narrow(1, tokens - 1, 1).reshape([rows, hidden]);
        self.cls.predictions.forward(last, &e.word_embeddings)
    }
}

impl Predictions {
    fn forward(&self, x: Tensor<2>, word_embeddings: &Embedding) -> Tensor<2> {
        let t = &self.transform;
        let x = t.layer_norm.forward(t.activation.apply(t.dense.forward(x)));
        let weight = match &self.decoder.weight {
            Some(weight) => weight.val(),
            None => word_embeddings.weight.val(),
        };
        let bias = match (&self.decoder.bias, &self.bias) {
            (Some(bias), _) | (None, Some(bias)) => bias.val(),
            (None, None) => unreachable!("the LM head has a bias, tied or not"),
        };
        x.matmul(weight.transpose()) + bias.unsqueeze_dim(0)
    }
}

/// `[rows, tokens, heads * head]` to `[rows, heads, tokens, head]`.
fn split_heads(t: Tensor<3>, heads: usize) -> Tensor<4> {
    let [rows, tokens, hidden] = t.dims();
    t.reshape([rows, tokens, heads, hidden / heads])
        .swap_dims(1, 2)
}

/// Scaled dot-product attention as BLIP's text model does it (scores divided by the square root
/// of the head size, masked scores replaced by the lowest float), back to `[rows, tokens, hidden]`.
fn attend(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<3> {
    let [rows, heads, tokens, head] = q.dims();
    let mut scores = q.matmul(k.swap_dims(2, 3)).div_scalar((head as f64).sqrt());
    if let Some(mask) = mask {
        let [_, _, _, keys] = scores.dims();
        scores = scores.mask_fill(mask.expand([rows, heads, tokens, keys]), f32::MIN);
    }
    softmax(scores, 3)
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([rows, tokens, heads * head])
}

impl TextLayer {
    fn forward(
        &self,
        x: Tensor<3>,
        mask: Option<Tensor<4, Bool>>,
        self_kv: &mut Option<(Tensor<4>, Tensor<4>)>,
        cross_kv: &(Tensor<4>, Tensor<4>),
    ) -> Tensor<3> {
        let heads = self.heads;
        let a = &self.attention.self_attn;
        let q = split_heads(a.query.forward(x.clone()), heads);
        let mut k = split_heads(a.key.forward(x.clone()), heads);
        let mut v = split_heads(a.value.forward(x.clone()), heads);
        if let Some((past_k, past_v)) = self_kv.take() {
            k = Tensor::cat(vec![past_k, k], 2);
            v = Tensor::cat(vec![past_v, v], 2);
        }
        *self_kv = Some((k.clone(), v.clone()));
        let context = attend(q, k, v, mask);
        let out = &self.attention.output;
        let x = out.layer_norm.forward(out.dense.forward(context) + x);

        let c = &self.crossattention.self_attn;
        let q = split_heads(c.query.forward(x.clone()), heads);
        let context = attend(q, cross_kv.0.clone(), cross_kv.1.clone(), None);
        let out = &self.crossattention.output;
        let x = out.layer_norm.forward(out.dense.forward(context) + x);

        let inner = self
            .activation
            .apply(self.intermediate.dense.forward(x.clone()));
        let out = &self.output;
        out.layer_norm.forward(out.dense.forward(inner) + x)
    }
}
