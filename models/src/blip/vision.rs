//! The vision transformer (`BlipVisionModel`): patches of the image to the image embeddings the
//! text decoder's cross-attention reads.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

use super::config::{Activation, BlipVisionConfig};

/// The patch embedding (a convolution with stride = kernel = the patch size), the class token
/// and the learned position embeddings (`vision_model.embeddings.*`).
#[derive(Module, Debug)]
pub struct VisionEmbeddings {
    class_embedding: Param<Tensor<3>>,
    patch_embedding: Conv2d,
    position_embedding: Param<Tensor<3>>,
}

/// Self-attention with one fused `qkv` projection (`self_attn.qkv`, `self_attn.projection`).
#[derive(Module, Debug)]
pub struct VisionAttention {
    qkv: Linear,
    projection: Linear,
    #[module(skip)]
    heads: usize,
}

#[derive(Module, Debug)]
pub struct VisionMlp {
    fc1: Linear,
    fc2: Linear,
}

/// A pre-norm encoder block (`vision_model.encoder.layers.N`).
#[derive(Module, Debug)]
pub struct VisionLayer {
    self_attn: VisionAttention,
    layer_norm1: LayerNorm,
    mlp: VisionMlp,
    layer_norm2: LayerNorm,
    #[module(skip)]
    activation: Activation,
}

#[derive(Module, Debug)]
pub struct VisionEncoder {
    layers: Vec<VisionLayer>,
}

/// `vision_model`: embeddings, encoder, `post_layernorm`.
#[derive(Module, Debug)]
pub struct VisionModel {
    embeddings: VisionEmbeddings,
    encoder: VisionEncoder,
    post_layernorm: LayerNorm,
    #[module(skip)]
    image_size: usize,
    #[module(skip)]
    hidden_size: usize,
}

impl VisionModel {
    /// The architecture of `config` with uninitialised (lazy) parameters, to load weights into.
    pub fn init(config: &BlipVisionConfig, activation: Activation, device: &Device) -> Self {
        let hidden = config.hidden_size;
        let linear = |d_in: usize, d_out: usize| LinearConfig::new(d_in, d_out).init(device);
        let layer_norm = || {
            LayerNormConfig::new(hidden)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        let patches = (config.image_size / config.patch_size).pow(2);
        let layers = (0..config.num_hidden_layers)
            .map(|_| VisionLayer {
                self_attn: VisionAttention {
                    qkv: linear(hidden, 3 * hidden),
                    projection: linear(hidden, hidden),
                    heads: config.num_attention_heads,
                },
                layer_norm1: layer_norm(),
                mlp: VisionMlp {
                    fc1: linear(hidden, config.intermediate_size),
                    fc2: linear(config.intermediate_size, hidden),
                },
                layer_norm2: layer_norm(),
                activation,
            })
            .collect();
        let patch = config.patch_size;
        VisionModel {
            embeddings: VisionEmbeddings {
                class_embedding: Initializer::Zeros.init([1, 1, hidden], device),
                patch_embedding: Conv2dConfig::new([3, hidden], [patch, patch])
                    .with_stride([patch, patch])
                    .init(device),
                position_embedding: Initializer::Zeros.init([1, patches + 1, hidden], device),
            },
            encoder: VisionEncoder { layers },
            post_layernorm: layer_norm(),
            image_size: config.image_size,
            hidden_size: hidden,
        }
    }

    /// The side of the square images it takes.
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    /// The size of an image embedding.
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// The last hidden state after `post_layernorm`, `[batch, 1 + patches, hidden]`, for pixel
    /// values `[batch, 3, image_size, image_size]` (the processor's output).
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        let [batch, _, _, _] = pixels.dims();
        let e = &self.embeddings;
        let patches = e.patch_embedding.forward(pixels);
        let [_, hidden, gh, gw] = patches.dims();
        let patches = patches.reshape([batch, hidden, gh * gw]).swap_dims(1, 2);
        let class = e.class_embedding.val().expand([batch, 1, hidden]);
        let mut x = Tensor::cat(vec![class, patches], 1) + e.position_embedding.val();
        for layer in &self.encoder.layers {
            x = layer.forward(x);
        }
        self.post_layernorm.forward(x)
    }
}

impl VisionLayer {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.self_attn.forward(self.layer_norm1.forward(x.clone()));
        let x = h + x;
        let m = self.layer_norm2.forward(x.clone());
        let m = self
            .mlp
            .fc2
            .forward(self.activation.apply(self.mlp.fc1.forward(m)));
        m + x
    }
}

impl VisionAttention {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, tokens, hidden] = x.dims();
        let heads = self.heads;
        let head = hidden / heads;
        let qkv = self.qkv.forward(x);
        // transformers reshapes the fused output to `[batch, tokens, 3, heads, head]`: q, k, v
        // are the three consecutive thirds of the last dimension.
        let part = |i: usize| {
            qkv.clone()
                .narrow(2, i * hidden, hidden)
                .reshape([batch, tokens, heads, head])
                .swap_dims(1, 2)
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let scale = (head as f64).powf(-0.5);
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
        let context = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, tokens, hidden]);
        self.projection.forward(context)
    }
}
