//! [`ClipRanker`], the `ModelHandler`: an image path and candidate captions in, the captions
//! ranked by how well they describe the image out ([`Ranked`]).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use tandem_runtime::inference::{Batching, DeviceRequest, Loaded, ModelHandler};

use super::{prepare_rgb, ClipConfig, ClipModel, ClipTokenizer, CONTEXT_LENGTH};
use crate::hub::Weights;
use crate::Error;

/// An image and the captions to rank for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipQuery {
    pub image: PathBuf,
    pub captions: Vec<String>,
}

/// A caption with its score for the image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredCaption {
    pub caption: String,
    /// The softmax of the logits over the image's captions: the captions' scores sum to 1.
    pub score: f32,
    /// `exp(logit_scale) * cos(image, caption)` (transformers' `logits_per_image`).
    pub logit: f32,
}

/// The captions of a [`ClipQuery`], best first (ties keep the query's order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    pub captions: Vec<ScoredCaption>,
}

impl Ranked {
    /// The best caption.
    pub fn best(&self) -> Option<&ScoredCaption> {
        self.captions.first()
    }
}

/// A prepared query: the image's pixels (`3 * size * size`, channels first) and the captions
/// with their token ids (`<|startoftext|> ... <|endoftext|>`, not padded).
#[derive(Clone, Debug)]
pub struct PreparedQuery {
    pub pixels: Vec<f32>,
    pub captions: Vec<String>,
    pub ids: Vec<Vec<u32>>,
}

/// A loaded model: the network and its device.
#[derive(Debug)]
pub struct LoadedClip {
    pub model: ClipModel,
    pub device: Device,
}

/// `run_inference(ClipRanker::new(dir))`: zero-shot caption ranking with a CLIP checkpoint (the
/// Hugging Face folder `dir`: `config.json` and `model.safetensors`, see [`ClipModel::load`]).
/// Inputs are [`ClipQuery`]s (an image **path**, read and decoded in `prepare`, and its
/// candidate captions); inferences are [`Ranked`] captions. A batch runs the image tower once
/// over its images and the text tower once over all their captions (padded to the longest).
/// Batches of up to 8 queries by default (`.max_batch(n)` from `HandlerExt` changes it).
#[derive(Clone)]
pub struct ClipRanker {
    /// The checkpoint folder, or `openai/clip-vit-base-patch32` from the Hugging Face cache
    /// (fetched from the hub where it is reachable, see [`crate::hub`]).
    pub weights: Weights,
    /// The config, read once (by `load` or `prepare`), shared by clones.
    config: Arc<OnceLock<Result<Arc<ClipConfig>, Arc<Error>>>>,
    /// The tokenizer, fetched and loaded once, shared by clones.
    tokenizer: Arc<OnceLock<Result<Arc<ClipTokenizer>, Arc<Error>>>>,
}

impl std::fmt::Debug for ClipRanker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipRanker")
            .field("weights", &self.weights)
            .finish_non_exhaustive()
    }
}

impl ClipRanker {
    /// The ranker of the checkpoint in the folder `weights` (read when the pipeline loads it).
    pub fn new(weights: impl Into<PathBuf>) -> Self {
        Self::with_weights(Some(weights.into()))
    }

    /// The ranker of `openai/clip-vit-base-patch32`, from the Hugging Face cache or the hub
    /// ([`crate::hub::CLIP`]); where neither has it, loading fails with a paragraph saying how
    /// to get it.
    pub fn pretrained() -> Self {
        Self::with_weights(None)
    }

    fn with_weights(weights: Option<PathBuf>) -> Self {
        Self {
            weights: Weights::new(crate::hub::CLIP, weights),
            config: Arc::default(),
            tokenizer: Arc::default(),
        }
    }

    /// The model id: `clip-` and the checkpoint folder's name (`clip-clip-vit-base-patch32`), or
    /// the hub model's name for [`ClipRanker::pretrained`].
    pub fn model_id(&self) -> String {
        self.weights.model_id("clip")
    }

    /// The checkpoint folder: the one given, or the hub model's in the Hugging Face cache.
    pub fn folder(&self) -> Result<PathBuf, Arc<Error>> {
        self.weights.folder()
    }

    /// The checkpoint's config (read once; so is a failure).
    pub fn config(&self) -> Result<Arc<ClipConfig>, Arc<Error>> {
        self.config
            .get_or_init(|| {
                let folder = self.folder()?;
                ClipConfig::load(&folder).map(Arc::new).map_err(Arc::new)
            })
            .clone()
    }

    /// The tokenizer (fetched and loaded once; so is a failure).
    pub fn tokenizer(&self) -> Result<Arc<ClipTokenizer>, Arc<Error>> {
        self.tokenizer
            .get_or_init(|| ClipTokenizer::load().map(Arc::new).map_err(Arc::new))
            .clone()
    }

    /// [`ModelHandler::load`], with the crate's error (the config's and tokenizer's as their
    /// messages).
    fn load_on(&self, choice: DeviceRequest) -> Result<Loaded<LoadedClip>, String> {
        // The tokenizer too, so that a missing one fails the run at start-up.
        let folder = self.folder().map_err(|e| e.to_string())?;
        self.tokenizer().map_err(|e| e.to_string())?;
        self.config().map_err(|e| e.to_string())?;
        let load = || -> Result<_, Error> {
            let (device, device_name) = crate::device::select(choice)?;
            let model = ClipModel::load(&folder, &device)?;
            Ok(Loaded::new(
                LoadedClip { model, device },
                device_name,
                self.model_id(),
            ))
        };
        load().map_err(|e| e.to_string())
    }
}

/// Prepares a query for a checkpoint of this config: reads the image and resizes it to the
/// config's `image_size` ([`prepare_rgb`]), tokenizes the captions (at most 77 tokens each, or
/// the config's `max_position_embeddings` if fewer).
pub fn prepare_query(
    config: &ClipConfig,
    tokenizer: &ClipTokenizer,
    query: &ClipQuery,
) -> Result<PreparedQuery, Error> {
    if query.captions.is_empty() {
        return Err(Error::NoCaptions {
            image: query.image.clone(),
        });
    }
    let rgb = crate::image_io::read_rgb(&query.image)?;
    let pixels = prepare_rgb(&rgb, config.image_size());
    let context = CONTEXT_LENGTH.min(config.text_config.max_position_embeddings);
    let ids = query
        .captions
        .iter()
        .map(|c| tokenizer.ids(c, context))
        .collect();
    Ok(PreparedQuery {
        pixels,
        captions: query.captions.clone(),
        ids,
    })
}

/// Ranks each prepared query's captions: the image tower over all the images, the text tower
/// over all the captions (padded with 0 to the longest), one logits matrix, then a softmax over
/// each image's own captions.
pub fn rank(
    model: &ClipModel,
    device: &Device,
    batch: Vec<PreparedQuery>,
) -> Result<Vec<Ranked>, Error> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let n = batch.len();
    let size = model.image_size();
    let mut pixels = Vec::with_capacity(n * 3 * size * size);
    for query in &batch {
        if query.pixels.len() != 3 * size * size {
            return Err(Error::PreparedSize { model: "CLIP" });
        }
        pixels.extend_from_slice(&query.pixels);
    }
    let images = Tensor::<4>::from_data(TensorData::new(pixels, [n, 3, size, size]), device);

    let sequences: Vec<&Vec<u32>> = batch.iter().flat_map(|q| &q.ids).collect();
    let texts = sequences.len();
    let tokens = sequences.iter().map(|s| s.len()).max().unwrap_or(0);
    let max = model.max_tokens();
    if texts == 0 || tokens == 0 || tokens > max {
        return Err(Error::SequenceLength { tokens, max });
    }
    let vocab = model.vocab_size();
    let mut ids = vec![0i64; texts * tokens];
    for (row, seq) in sequences.iter().enumerate() {
        for (col, &id) in seq.iter().enumerate() {
            if id as usize >= vocab {
                return Err(Error::TokenId { id, vocab });
            }
            ids[row * tokens + col] = i64::from(id);
        }
    }
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [texts, tokens]), device);

    let logits = model
        .logits_per_image(model.encode_image(images), model.encode_text(ids))
        .try_into_vec_as::<f32>()
        .map_err(Error::read_back("logits"))?;

    let mut first = 0;
    Ok(batch
        .into_iter()
        .enumerate()
        .map(|(row, query)| {
            let own = &logits[row * texts + first..row * texts + first + query.ids.len()];
            first += query.ids.len();
            rank_one(query.captions, own)
        })
        .collect())
}

/// One image's captions with their logits, scored (softmax) and sorted best first.
fn rank_one(captions: Vec<String>, logits: &[f32]) -> Ranked {
    let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - top).exp()).collect();
    let total: f64 = exps.iter().sum();
    let mut scored: Vec<ScoredCaption> = captions
        .into_iter()
        .zip(logits)
        .zip(&exps)
        .map(|((caption, &logit), &e)| ScoredCaption {
            caption,
            score: (e / total) as f32,
            logit,
        })
        .collect();
    scored.sort_by(|a, b| b.logit.total_cmp(&a.logit));
    Ranked { captions: scored }
}

impl ModelHandler for ClipRanker {
    type Input = ClipQuery;
    type Prepared = PreparedQuery;
    type Inference = Ranked;
    type Model = LoadedClip;

    fn name(&self) -> String {
        "clip".into()
    }

    fn batching(&self) -> Batching {
        Batching {
            max_batch: 8,
            ..Batching::default()
        }
    }

    fn load(&self, choice: DeviceRequest) -> Result<Loaded<Self::Model>, String> {
        self.load_on(choice)
    }

    fn prepare(&self, input: &Self::Input) -> Result<Self::Prepared, String> {
        let config = self.config().map_err(|e| e.to_string())?;
        let tokenizer = self.tokenizer().map_err(|e| e.to_string())?;
        prepare_query(&config, &tokenizer, input).map_err(|e| e.to_string())
    }

    fn infer(
        &self,
        model: &mut Self::Model,
        batch: Vec<Self::Prepared>,
    ) -> Result<Vec<Self::Inference>, String> {
        rank(&model.model, &model.device, batch).map_err(|e| e.to_string())
    }
}
