//! Checkpoints from the Hugging Face hub: BLIP's and CLIP's, which no pip package ships.
//!
//! A checkpoint is a folder holding the model's `config.json` and `model.safetensors`, exactly as
//! the hub's repository has them. [`Checkpoint::folder`] takes one given on the command line
//! (`--blip DIR`, `--clip DIR`; the model's loader checks what is in it); without one it looks in the Hugging Face cache
//! (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`, the cache `huggingface_hub` and
//! `transformers` share) and, when the files are not there, fetches them into it with the
//! `hf-hub` crate (`$HF_ENDPOINT` selects a mirror). Where the hub cannot be reached the error is
//! one paragraph that names the model ids, the folder layout and the command that fetches them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::Error;

/// The files a checkpoint folder holds.
pub const FILES: [&str; 2] = ["config.json", "model.safetensors"];

/// A model on the Hugging Face hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The repository id, e.g. `openai/clip-vit-base-patch32`.
    pub id: &'static str,
    /// What it is, for messages.
    pub what: &'static str,
    /// The command-line option that gives its folder (`--clip`).
    pub option: &'static str,
}

/// CLIP ViT-B/32, the caption ranker.
pub const CLIP: Checkpoint = Checkpoint {
    id: "openai/clip-vit-base-patch32",
    what: "CLIP ViT-B/32",
    option: "--clip",
};

/// BLIP image captioning, base, the caption writer.
pub const BLIP: Checkpoint = Checkpoint {
    id: "Salesforce/blip-image-captioning-base",
    what: "BLIP image captioning (base)",
    option: "--blip",
};

/// The command that fetches both checkpoints where the hub is reachable.
pub const FETCH_COMMAND: &str = "cargo run --release --example fetch_models -- --hub";

/// Why a checkpoint folder could not be found or fetched: one paragraph a user can act on.
#[derive(Debug)]
pub struct NoCheckpoint {
    pub checkpoint: Checkpoint,
    /// What was tried and how it failed.
    pub tried: String,
}

impl fmt::Display for NoCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.checkpoint;
        write!(
            f,
            "no weights for {what}: this needs the Hugging Face checkpoints `{blip}` (captions) \
             and `{clip}` (ranking), each a folder holding `config.json` and `model.safetensors` \
             as the hub has them. Give the folders with `--blip DIR --clip DIR`, or fetch them \
             into the Hugging Face cache (`$HF_HOME/hub`, default ~/.cache/huggingface/hub) where \
             the hub is reachable: `{FETCH_COMMAND}` (or `huggingface-cli download {blip}` and \
             `huggingface-cli download {clip}`). ({tried})",
            what = c.what,
            blip = BLIP.id,
            clip = CLIP.id,
            tried = self.tried,
        )
    }
}

impl std::error::Error for NoCheckpoint {}

impl Checkpoint {
    /// The checkpoint's folder: `given` as it is (the loader says what is missing in it), else
    /// the Hugging Face cache, else fetched from the hub into it.
    pub fn folder(&self, given: Option<&Path>) -> Result<PathBuf, Error> {
        match given {
            Some(dir) => Ok(dir.to_owned()),
            None => self.cached().map_or_else(|| self.fetch(), Ok),
        }
    }

    /// The model id without its owner (`clip-vit-base-patch32`).
    pub fn name(&self) -> &'static str {
        self.id.rsplit('/').next().unwrap_or(self.id)
    }

    /// The folder in the Hugging Face cache, if both files are there (nothing is fetched).
    pub fn cached(&self) -> Option<PathBuf> {
        self.cached_in(hf_hub::Cache::from_env().path())
    }

    /// The folder in the Hugging Face cache at `hub` (`$HF_HOME/hub`: `models--OWNER--NAME/`
    /// with `refs/main` naming a snapshot), if both files are there.
    pub fn cached_in(&self, hub: &Path) -> Option<PathBuf> {
        let repo = hf_hub::Cache::new(hub.to_owned()).model(self.id.to_owned());
        let weights = repo.get(FILES[1])?;
        let config = repo.get(FILES[0])?;
        (weights.parent() == config.parent()).then(|| weights.parent().map(Path::to_owned))?
    }

    /// Fetches both files from the hub into the Hugging Face cache and returns their folder.
    pub fn fetch(&self) -> Result<PathBuf, Error> {
        let api = hf_hub::api::sync::ApiBuilder::from_env()
            .with_progress(true)
            .build()
            .map_err(|e| self.not_found(format!("the hub client could not start: {e}")))?;
        let repo = api.model(self.id.to_owned());
        let mut folder = None;
        for file in FILES {
            let path = repo.get(file).map_err(|e| {
                self.not_found(format!(
                    "not in the Hugging Face cache, and fetching `{file}` of `{}` from the hub \
                     failed: {e}",
                    self.id
                ))
            })?;
            folder = path.parent().map(Path::to_owned);
        }
        folder.ok_or_else(|| self.not_found("the hub returned no file".into()))
    }

    fn not_found(&self, tried: String) -> Error {
        Error::NoCheckpoint(Box::new(NoCheckpoint {
            checkpoint: *self,
            tried,
        }))
    }
}

/// A handler's checkpoint: a folder given (`--blip DIR`), or the hub model, found in the Hugging
/// Face cache or fetched into it on first use ([`Checkpoint::folder`]). The folder (or why there
/// is none) is looked up once and shared by clones, so every replica and `prepare` see the same.
#[derive(Clone, Debug)]
pub struct Weights {
    checkpoint: Checkpoint,
    given: Option<PathBuf>,
    folder: Arc<OnceLock<Result<PathBuf, Arc<Error>>>>,
}

impl Weights {
    /// `given`, or (`None`) the hub model `checkpoint`.
    pub fn new(checkpoint: Checkpoint, given: Option<PathBuf>) -> Self {
        Self {
            checkpoint,
            given,
            folder: Arc::default(),
        }
    }

    /// The folder given, if one was.
    pub fn given(&self) -> Option<&Path> {
        self.given.as_deref()
    }

    /// The checkpoint folder (looked up once; so is a failure).
    pub fn folder(&self) -> Result<PathBuf, Arc<Error>> {
        self.folder
            .get_or_init(|| self.checkpoint.folder(self.given()).map_err(Arc::new))
            .clone()
    }

    /// A model id: `PREFIX-` and the given folder's name, or the hub model's name
    /// (`clip-clip-vit-base-patch32`).
    pub fn model_id(&self, prefix: &str) -> String {
        match &self.given {
            Some(dir) => format!(
                "{prefix}-{}",
                dir.file_name().unwrap_or_default().to_string_lossy()
            ),
            None => format!("{prefix}-{}", self.checkpoint.name()),
        }
    }
}
