//! [`MiniLm`], the `ModelHandler`, and [`embed`], the batch step it runs.

use std::sync::{Arc, OnceLock};

use burn::tensor::{Device, Int, Tensor, TensorData};
use tandem_runtime::inference::{Batching, DeviceRequest, Loaded, ModelHandler};
use tokenizers::Tokenizer;

use super::{load_tokenizer, tokenize, MiniLmModel, MAX_TOKENS};
use crate::Error;

/// Embeds a batch of token-id sequences (each from [`load_tokenizer`]'s tokenizer, at most
/// [`MAX_TOKENS`] long): pads them to the longest with id 0 and a zero mask, runs the model and
/// reads the embeddings back, one `Vec` of [`DIM`](super::DIM) per sequence.
pub fn embed(
    model: &MiniLmModel,
    device: &Device,
    batch: &[Vec<u32>],
) -> Result<Vec<Vec<f32>>, Error> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let n = batch.len();
    let tokens = batch.iter().map(Vec::len).max().unwrap_or(0);
    if tokens == 0 || tokens > MAX_TOKENS {
        return Err(Error::SequenceLength {
            tokens,
            max: MAX_TOKENS,
        });
    }
    let vocab = model.vocab_size();
    let mut ids = vec![0i64; n * tokens];
    let mut mask = vec![0f32; n * tokens];
    for (row, seq) in batch.iter().enumerate() {
        for (col, &id) in seq.iter().enumerate() {
            if id as usize >= vocab {
                return Err(Error::TokenId { id, vocab });
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
        .map_err(Error::read_back("embeddings"))?;
    Ok(flat.chunks(model.dim()).map(<[f32]>::to_vec).collect())
}

/// `run_inference(MiniLm::new())`: inputs are texts (`String`), inferences their unit-length
/// 384-d embeddings (`Vec<f32>`; the dot product of two is their cosine similarity). Texts over
/// [`MAX_TOKENS`] tokens are truncated (see the module docs). The model id is
/// `all-MiniLM-L6-v2@` and the first 8 hex digits of the weights' sha256. Batches of up to 32
/// texts by default (`.max_batch(n)` from `HandlerExt` changes it).
#[derive(Clone, Default)]
pub struct MiniLm {
    /// The tokenizer, fetched and loaded on first use (by `load` or `prepare`), shared by clones.
    tokenizer: Arc<OnceLock<Result<Arc<Tokenizer>, Arc<Error>>>>,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm").finish_non_exhaustive()
    }
}

impl MiniLm {
    pub fn new() -> Self {
        Self::default()
    }

    /// The model id: `all-MiniLM-L6-v2@53aa5117`.
    pub fn id() -> String {
        format!(
            "all-MiniLM-L6-v2@{}",
            &crate::fetch::MINILM_WEIGHTS.sha256[..8]
        )
    }

    /// The tokenizer (fetched and loaded once; so is a failure).
    pub fn tokenizer(&self) -> Result<Arc<Tokenizer>, Arc<Error>> {
        self.tokenizer
            .get_or_init(|| {
                let load = || -> Result<Tokenizer, Error> {
                    load_tokenizer(&crate::fetch::MINILM_TOKENIZER.path()?)
                };
                load().map(Arc::new).map_err(Arc::new)
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
        Batching {
            max_batch: 32,
            ..Batching::default()
        }
    }

    fn load(&self, choice: DeviceRequest) -> Result<Loaded<Self::Model>, String> {
        // The tokenizer too, so that a missing one fails the run at start-up.
        self.tokenizer().map_err(|e| e.to_string())?;
        let load = || -> Result<_, Error> {
            let (device, name) = crate::device::select(choice)?;
            let weights = crate::fetch::MINILM_WEIGHTS.path()?;
            let model = MiniLmModel::load(&weights, &device)?;
            Ok(Loaded::new((model, device), name, Self::id()))
        };
        load().map_err(|e| e.to_string())
    }

    fn prepare(&self, input: &Self::Input) -> Result<Self::Prepared, String> {
        let tokenizer = self.tokenizer().map_err(|e| e.to_string())?;
        tokenize(&tokenizer, input).map_err(|e| e.to_string())
    }

    fn infer(
        &self,
        (model, device): &mut Self::Model,
        batch: Vec<Self::Prepared>,
    ) -> Result<Vec<Self::Inference>, String> {
        embed(model, device, &batch).map_err(|e| e.to_string())
    }
}
