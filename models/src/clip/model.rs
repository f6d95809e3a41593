//! The network: [`ClipConfig`] (a Hugging Face `config.json` of a `CLIPModel`) and
//! [`ClipModel`], the two towers and their projections, as transformers' `modeling_clip.py`
//! computes them.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::prelude::Module;
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

/// What a masked key adds to the attention scores (the causal mask): its weight after the
/// softmax is exactly 0, as with transformers' `finfo.min`.
const MASKED: f32 = -1.0e9;

/// The token id transformers' legacy configs give as `eos_token_id` (openai's checkpoints):
/// with it, the text is pooled at the largest id of each sequence (`<|endoftext|>`, 49407).
pub const LEGACY_EOS_TOKEN_ID: i64 = 2;

/// The feed-forward activation (`hidden_act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`, OpenAI's (`quick_gelu`).
    QuickGelu,
    /// The exact (erf) GELU (`gelu`).
    Gelu,
}

impl Activation {
    /// The activation of a `hidden_act`, or `None` for one this port does not implement.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "quick_gelu" => Some(Self::QuickGelu),
            "gelu" => Some(Self::Gelu),
            _ => None,
        }
    }
}

/// A size given as one number or as `[height, width]` (transformers accepts both for
/// `image_size` and `patch_size`); only square ones are supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Square(usize),
    Pair([usize; 2]),
}

impl Size {
    /// The side, if square.
    pub fn side(self) -> Option<usize> {
        match self {
            Self::Square(side) => Some(side),
            Self::Pair([h, w]) => (h == w).then_some(h),
        }
    }
}

/// An id given as one number or a list (transformers allows a list for `eos_token_id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(i64),
    Many(Vec<i64>),
}

/// The text tower's hyperparameters (`text_config`); missing fields take transformers'
/// `CLIPTextConfig` defaults, unknown ones are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
    pub bos_token_id: Option<i64>,
    pub eos_token_id: Option<TokenIds>,
    pub pad_token_id: Option<i64>,
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            bos_token_id: Some(49406),
            eos_token_id: Some(TokenIds::One(49407)),
            pad_token_id: Some(1),
        }
    }
}

/// The vision tower's hyperparameters (`vision_config`); missing fields take transformers'
/// `CLIPVisionConfig` defaults (ViT-B/32's), unknown ones are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipVisionConfig {
    pub image_size: Size,
    pub patch_size: Size,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
}

impl Default for ClipVisionConfig {
    fn default() -> Self {
        Self {
            image_size: Size::Square(224),
            patch_size: Size::Square(32),
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

/// A `CLIPModel`'s `config.json`: the two towers, the size of the shared embedding space and the
/// initial logit scale (the checkpoint's `logit_scale` is what counts). Missing fields take
/// transformers' defaults, which are ViT-B/32's. Read one with [`ClipConfig::from_json`];
/// [`ClipConfig::check`] says whether this port can run it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipConfig {
    pub text_config: ClipTextConfig,
    pub vision_config: ClipVisionConfig,
    pub projection_dim: usize,
    pub logit_scale_init_value: f64,
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self {
            text_config: ClipTextConfig::default(),
            vision_config: ClipVisionConfig::default(),
            projection_dim: 512,
            logit_scale_init_value: 2.6592,
        }
    }
}

impl ClipConfig {
    /// Parses a `config.json` and [checks](ClipConfig::check) it; the message says what is wrong.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let config: Self = serde_json::from_str(json).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    /// Whether this port runs the configuration: activations `quick_gelu` or `gelu`, square
    /// images and patches with the image a multiple of the patch, hidden sizes divisible by the
    /// heads, non-zero sizes, and one integer `eos_token_id`.
    pub fn check(&self) -> Result<(), String> {
        let (t, v) = (&self.text_config, &self.vision_config);
        for (tower, act) in [("text", &t.hidden_act), ("vision", &v.hidden_act)] {
            if Activation::parse(act).is_none() {
                return Err(format!(
                    "the {tower} tower's hidden_act {act:?} is not supported (quick_gelu or gelu)"
                ));
            }
        }
        let image = v.image_size.side().ok_or("the image_size is not square")?;
        let patch = v.patch_size.side().ok_or("the patch_size is not square")?;
        let sizes = [
            ("text vocab_size", t.vocab_size),
            ("text hidden_size", t.hidden_size),
            ("text intermediate_size", t.intermediate_size),
            ("text num_attention_heads", t.num_attention_heads),
            ("text max_position_embeddings", t.max_position_embeddings),
            ("vision hidden_size", v.hidden_size),
            ("vision intermediate_size", v.intermediate_size),
            ("vision num_attention_heads", v.num_attention_heads),
            ("vision num_channels", v.num_channels),
            ("image_size", image),
            ("patch_size", patch),
            ("projection_dim", self.projection_dim),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, n)| *n == 0) {
            return Err(format!("the {name} is 0"));
        }
        if image % patch != 0 {
            return Err(format!(
                "the image_size {image} is not a multiple of the patch_size {patch}"
            ));
        }
        for (tower, hidden, heads) in [
            ("text", t.hidden_size, t.num_attention_heads),
            ("vision", v.hidden_size, v.num_attention_heads),
        ] {
            if hidden % heads != 0 {
                return Err(format!(
                    "the {tower} hidden_size {hidden} is not divisible by its {heads} heads"
                ));
            }
        }
        self.eos_token_id()?;
        Ok(())
    }

    /// The text tower's `eos_token_id` (a list of one id counts as that id).
    pub fn eos_token_id(&self) -> Result<i64, String> {
        match &self.text_config.eos_token_id {
            Some(TokenIds::One(id)) => Ok(*id),
            Some(TokenIds::Many(ids)) if ids.len() == 1 => Ok(ids[0]),
            other => Err(format!(
                "the text eos_token_id {other:?} is not one integer"
            )),
        }
    }

    /// The side of the square input image, in pixels.
    pub fn image_size(&self) -> usize {
        self.vision_config.image_size.side().unwrap_or(0)
    }

    /// The architecture with uninitialised (lazy) parameters, to load weights into. The config
    /// must [check](ClipConfig::check).
    ///
    /// # Panics
    /// If it does not.
    pub fn init(&self, device: &Device) -> ClipModel {
        if let Err(problem) = self.check() {
            panic!("ClipConfig::init on a config that does not check: {problem}");
        }
        let (t, v) = (&self.text_config, &self.vision_config);
        let patch = v.patch_size.side().unwrap_or(1);
        let grid = self.image_size() / patch;
        let linear = |d_in: usize, d_out: usize, bias: bool| -> Linear {
            LinearConfig::new(d_in, d_out).with_bias(bias).init(device)
        };
        let layer_norm = |dim: usize, eps: f64| -> LayerNorm {
            LayerNormConfig::new(dim).with_epsilon(eps).init(device)
        };
        let encoder = |hidden: usize,
                       intermediate: usize,
                       layers: usize,
                       heads: usize,
                       eps: f64,
                       act: &str|
         -> Encoder {
            let quick_gelu = Activation::parse(act) == Some(Activation::QuickGelu);
            Encoder {
                layers: (0..layers)
                    .map(|_| EncoderLayer {
                        self_attn: Attention {
                            k_proj: linear(hidden, hidden, true),
                            v_proj: linear(hidden, hidden, true),
                            q_proj: linear(hidden, hidden, true),
                            out_proj: linear(hidden, hidden, true),
                            heads,
                        },
                        layer_norm1: layer_norm(hidden, eps),
                        mlp: Mlp {
                            fc1: linear(hidden, intermediate, true),
                            fc2: linear(intermediate, hidden, true),
                            quick_gelu,
                        },
                        layer_norm2: layer_norm(hidden, eps),
                    })
                    .collect(),
            }
        };
        let eos_token_id = self.eos_token_id().unwrap_or(LEGACY_EOS_TOKEN_ID);
        ClipModel {
            text_model: TextTransformer {
                embeddings: TextEmbeddings {
                    token_embedding: EmbeddingConfig::new(t.vocab_size, t.hidden_size).init(device),
                    position_embedding: EmbeddingConfig::new(
                        t.max_position_embeddings,
                        t.hidden_size,
                    )
                    .init(device),
                },
                encoder: encoder(
                    t.hidden_size,
                    t.intermediate_size,
                    t.num_hidden_layers,
                    t.num_attention_heads,
                    t.layer_norm_eps,
                    &t.hidden_act,
                ),
                final_layer_norm: layer_norm(t.hidden_size, t.layer_norm_eps),
                eos_token_id,
            },
            vision_model: VisionTransformer {
                embeddings: VisionEmbeddings {
                    class_embedding: Initializer::Zeros.init([v.hidden_size], device),
                    patch_embedding: Conv2dConfig::new(
                        [v.num_channels, v.hidden_size],
                        [patch, patch],
                    )
                    .with_stride([patch, patch])
                    .with_bias(false)
                    .init(device),
                    position_embedding: EmbeddingConfig::new(grid * grid + 1, v.hidden_size)
                        .init(device),
                },
                pre_layrnorm: layer_norm(v.hidden_size, v.layer_norm_eps),
                encoder: encoder(
                    v.hidden_size,
                    v.intermediate_size,
                    v.num_hidden_layers,
                    v.num_attention_heads,
                    v.layer_norm_eps,
                    &v.hidden_act,
                ),
                post_layernorm: layer_norm(v.hidden_size, v.layer_norm_eps),
                image_size: self.image_size(),
                num_channels: v.num_channels,
            },
            visual_projection: linear(v.hidden_size, self.projection_dim, false),
            text_projection: linear(t.hidden_size, self.projection_dim, false),
            logit_scale: Initializer::Constant {
                value: self.logit_scale_init_value,
            }
            .init([1], device),
        }
    }
}

/// Multi-head self-attention (`self_attn`).
#[derive(Module, Debug)]
pub struct Attention {
    k_proj: Linear,
    v_proj: Linear,
    q_proj: Linear,
    out_proj: Linear,
    heads: usize,
}

/// The feed-forward block (`mlp`).
#[derive(Module, Debug)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    /// `quick_gelu`, else the exact GELU.
    quick_gelu: bool,
}

/// A pre-norm transformer block (`encoder.layers.N`).
#[derive(Module, Debug)]
pub struct EncoderLayer {
    self_attn: Attention,
    layer_norm1: LayerNorm,
    mlp: Mlp,
    layer_norm2: LayerNorm,
}

#[derive(Module, Debug)]
pub struct Encoder {
    layers: Vec<EncoderLayer>,
}

#[derive(Module, Debug)]
pub struct TextEmbeddings {
    token_embedding: Embedding,
    position_embedding: Embedding,
}

/// The text tower (`text_model`).
#[derive(Module, Debug)]
pub struct TextTransformer {
    embeddings: TextEmbeddings,
    encoder: Encoder,
    final_layer_norm: LayerNorm,
    /// Where the text is pooled: at the first `eos_token_id`, or at the largest id with
    /// [`LEGACY_EOS_TOKEN_ID`].
    eos_token_id: i64,
}

#[derive(Module, Debug)]
pub struct VisionEmbeddings {
    class_embedding: Param<Tensor<1>>,
    patch_embedding: Conv2d,
    position_embedding: Embedding,
}

/// The vision tower (`vision_model`).
#[derive(Module, Debug)]
pub struct VisionTransformer {
    embeddings: VisionEmbeddings,
    /// Sic: the checkpoint's name.
    pre_layrnorm: LayerNorm,
    encoder: Encoder,
    post_layernorm: LayerNorm,
    image_size: usize,
    num_channels: usize,
}

/// CLIP: an image tower and a text tower projected into one embedding space, where the cosine
/// similarity of an image and a text says how well the text describes the image. Field names
/// follow the Hugging Face checkpoint's (`text_model.encoder.layers.3.self_attn.q_proj`,
/// `vision_model.pre_layrnorm`, ...), so [`ClipModel::load`] renames nothing.
#[derive(Module, Debug)]
pub struct ClipModel {
    text_model: TextTransformer,
    vision_model: VisionTransformer,
    visual_projection: Linear,
    text_projection: Linear,
    /// The log of the logit scale, one number (a scalar in the checkpoint).
    logit_scale: Param<Tensor<1>>,
}

impl ClipModel {
    /// The side of the square images the vision tower takes.
    pub fn image_size(&self) -> usize {
        self.vision_model.image_size
    }

    /// The number of positions the text tower embeds (the longest token sequence).
    pub fn max_tokens(&self) -> usize {
        self.text_model
            .embeddings
            .position_embedding
            .weight
            .lazy_shape()[0]
    }

    /// The number of token ids the text tower embeds.
    pub fn vocab_size(&self) -> usize {
        self.text_model
            .embeddings
            .token_embedding
            .weight
            .lazy_shape()[0]
    }

    /// The size of an embedding (`projection_dim`).
    pub fn dim(&self) -> usize {
        self.text_projection.weight.lazy_shape()[1]
    }

    /// The logit scale's log, `[1]` (exp it for the scale: 100 for openai's checkpoints).
    pub fn logit_scale(&self) -> Tensor<1> {
        self.logit_scale.val()
    }

    /// Projected, **unnormalised** image features `[batch, dim]` (transformers'
    /// `get_image_features`) for pixels `[batch, channels, size, size]` (CLIP-normalised,
    /// channels first: [`prepare_rgb`](super::prepare_rgb)).
    ///
    /// # Panics
    /// If the images are not `[_, num_channels, image_size, image_size]`.
    pub fn image_features(&self, pixels: Tensor<4>) -> Tensor<2> {
        let vision = &self.vision_model;
        let [batch, channels, height, width] = pixels.dims();
        let size = vision.image_size;
        assert!(
            channels == vision.num_channels && height == size && width == size,
            "CLIP takes [batch, {}, {size}, {size}] images, not {:?}",
            vision.num_channels,
            pixels.dims()
        );
        let e = &vision.embeddings;
        // [batch, hidden, grid, grid] -> [batch, patches, hidden]
        let patches = e.patch_embedding.forward(pixels);
        let [_, hidden, gh, gw] = patches.dims();
        let patches = patches.reshape([batch, hidden, gh * gw]).swap_dims(1, 2);
        let class = e
            .class_embedding
            .val()
            .reshape([1, 1, hidden])
            .expand([batch, 1, hidden]);
        let positions = e
            .position_embedding
            .weight
            .val()
            .reshape([1, gh * gw + 1, hidden]);
        let x = Tensor::cat(vec![class, patches], 1) + positions;
        let x = vision.pre_layrnorm.forward(x);
        let x = vision.encoder.forward(x, None);
        let pooled = x.slice([0..batch, 0..1]).reshape([batch, hidden]);
        let pooled = vision.post_layernorm.forward(pooled);
        self.visual_projection.forward(pooled)
    }

    /// Projected, **unnormalised** text features `[batch, dim]` (transformers'
    /// `get_text_features`) for token ids `[batch, tokens]` (`<|startoftext|> ... <|endoftext|>`
    /// then any padding: [`ClipTokenizer::tokenize`](super::ClipTokenizer::tokenize)).
    /// The attention is causal and the text is pooled at its end token, so padding after it
    /// does not change the result (nor does its length).
    ///
    /// # Panics
    /// If there are more tokens than the model has positions.
    pub fn text_features(&self, ids: Tensor<2, Int>) -> Tensor<2> {
        let text = &self.text_model;
        let [batch, tokens] = ids.dims();
        let device = ids.device();
        let e = &text.embeddings;
        let max = self.max_tokens();
        assert!(
            tokens <= max,
            "CLIP's text tower takes at most {max} tokens, not {tokens}"
        );
        let hidden = e.token_embedding.weight.lazy_shape()[1];
        let positions = e
            .position_embedding
            .weight
            .val()
            .narrow(0, 0, tokens)
            .reshape([1, tokens, hidden]);
        let x = e.token_embedding.forward(ids.clone()) + positions;

        // [1, 1, tokens, tokens]: MASKED above the diagonal (a key after the query).
        let rows = Tensor::<1, Int>::arange(0..tokens as i64, &device).reshape([tokens, 1]);
        let cols = Tensor::<1, Int>::arange(0..tokens as i64, &device).reshape([1, tokens]);
        let future = cols
            .expand([tokens, tokens])
            .greater(rows.expand([tokens, tokens]));
        let causal = Tensor::<2>::zeros([tokens, tokens], &device)
            .mask_fill(future, MASKED)
            .reshape([1, 1, tokens, tokens]);
        let x = text.encoder.forward(x, Some(causal));
        let x = text.final_layer_norm.forward(x);

        // The first position of the end token: the largest id (legacy configs) or the first
        // `eos_token_id` (0 where a row has none, as torch's argmax of all zeros).
        let end = if text.eos_token_id == LEGACY_EOS_TOKEN_ID {
            let max = ids.clone().max_dim(1).expand([batch, tokens]);
            ids.equal(max)
        } else {
            ids.equal_elem(text.eos_token_id)
        };
        let positions = Tensor::<1, Int>::arange(0..tokens as i64, &device)
            .reshape([1, tokens])
            .expand([batch, tokens]);
        let first = positions
            .mask_fill(end.bool_not(), tokens as i64)
            .min_dim(1)
            .remainder_scalar(tokens as i64);
        let pooled = x
            .gather(1, first.reshape([batch, 1, 1]).expand([batch, 1, hidden]))
            .reshape([batch, hidden]);
        self.text_projection.forward(pooled)
    }

    /// Unit-length image embeddings `[batch, dim]` ([`ClipModel::image_features`], normalised).
    pub fn encode_image(&self, pixels: Tensor<4>) -> Tensor<2> {
        normalize(self.image_features(pixels))
    }

    /// Unit-length text embeddings `[batch, dim]` ([`ClipModel::text_features`], normalised).
    pub fn encode_text(&self, ids: Tensor<2, Int>) -> Tensor<2> {
        normalize(self.text_features(ids))
    }

    /// `exp(logit_scale) * images @ texts^T`, `[images, texts]`: transformers'
    /// `logits_per_image` for unit-length embeddings (a softmax over a row gives the texts'
    /// probabilities for that image).
    pub fn logits_per_image(&self, images: Tensor<2>, texts: Tensor<2>) -> Tensor<2> {
        let scale = self.logit_scale.val().exp().reshape([1, 1]);
        images.matmul(texts.transpose()) * scale
    }
}

/// Each row divided by its L2 norm (as transformers, with no epsilon).
fn normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt();
    x / norm
}

impl Encoder {
    fn forward(&self, mut x: Tensor<3>, mask: Option<Tensor<4>>) -> Tensor<3> {
        for layer in &self.layers {
            x = layer.forward(x, mask.clone());
        }
        x
    }
}

impl EncoderLayer {
    fn forward(&self, x: Tensor<3>, mask: Option<Tensor<4>>) -> Tensor<3> {
        let h = self
            .self_attn
            .forward(self.layer_norm1.forward(x.clone()), mask);
        let x = x + h;
        let h = self.mlp.forward(self.layer_norm2.forward(x.clone()));
        x + h
    }
}

impl Attention {
    fn forward(&self, x: Tensor<3>, mask: Option<Tensor<4>>) -> Tensor<3> {
        let [batch, tokens, hidden] = x.dims();
        let heads = self.heads;
        let head = hidden / heads;
        let split = |t: Tensor<3>| t.reshape([batch, tokens, heads, head]).swap_dims(1, 2);
        let q = split(self.q_proj.forward(x.clone()));
        let k = split(self.k_proj.forward(x.clone()));
        let v = split(self.v_proj.forward(x));
        let scale = (head as f64).powf(-0.5);
        let mut scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
        if let Some(mask) = mask {
            scores = scores + mask;
        }
        let context = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, tokens, hidden]);
        self.out_proj.forward(context)
    }
}

impl Mlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = self.fc1.forward(x);
        let x = if self.quick_gelu {
            x.clone() * sigmoid(x.mul_scalar(1.702))
        } else {
            crate::gelu::gelu(x)
        };
        self.fc2.forward(x)
    }
}
