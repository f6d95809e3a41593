//! The crate's [`Error`].

use std::path::PathBuf;

use burn::store::ApplyError;
use burn::tensor::TensorReadError;

pub use crate::device::DeviceError;
pub use crate::fetch::FetchError;
pub use crate::image_io::ImageError;

/// An error from a library the models call into (Burn's stores, the tokenizer).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `tandem-models`: fetching, loading, preparing or running a
/// model. Its `Display` is the one-paragraph message a pipeline shows (what failed, on which file,
/// and what to do about it); the underlying error, where there is one, is also its
/// [`source`](std::error::Error::source). Fetching, image decoding and device selection have
/// their own enums ([`FetchError`], [`ImageError`], [`DeviceError`]), which this one wraps
/// unchanged (`ImageError` with the image's path: [`Error::Image`]).
///
/// `ModelHandler`'s methods return `Result<_, String>` (the runtime's contract): the handlers
/// convert at that boundary with `.map_err(|e| e.to_string())`, so a dead letter's reason is this
/// message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A pretrained file could not be fetched or is damaged in the cache.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The requested device cannot be used.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A Hugging Face checkpoint (BLIP's, CLIP's) neither given nor fetchable.
    #[error(transparent)]
    NoCheckpoint(Box<crate::hub::NoCheckpoint>),

    /// An image file could not be read.
    #[error("cannot read the image `{}`: {source}", path.display())]
    ReadImage {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An image file was read but is not an image tandem decodes.
    #[error("`{}`: {source}", path.display())]
    Image { path: PathBuf, source: ImageError },

    /// A model file (weights, tokenizer) that is not there. `what` names it: "the
    /// all-MiniLM-L6-v2 weights".
    #[error("{what} `{}` do not exist (or are not a file)", path.display())]
    Missing { what: String, path: PathBuf },
    /// A model file that is there but could not be read.
    #[error("{what} `{}` could not be loaded: {source}", path.display())]
    Unloadable {
        what: String,
        path: PathBuf,
        source: BoxError,
    },
    /// Weights that were read but do not fit the model (see [`crate::weights::ensure_fits`]).
    /// `what` names them and their file.
    #[error(
        "{what} do not fit the model: missing {missing:?}, errors {errors:?}{}",
        not_used(unused)
    )]
    DoNotFit {
        what: String,
        missing: Vec<(String, String)>,
        errors: Vec<ApplyError>,
        /// The file's tensors the model did not use, where every tensor must be used.
        unused: Option<Vec<String>>,
    },

    /// CLIP: a `config.json` that was read but describes a model the port does not run (an
    /// unsupported activation, a non-square image, ...). `problem` says what.
    #[error("the CLIP config `{}` is not supported: {problem}", path.display())]
    ClipConfig { path: PathBuf, problem: String },
    /// CLIP: a caption list that is empty (there is nothing to rank).
    #[error("the image `{}` has no captions to rank", image.display())]
    NoCaptions { image: PathBuf },

    /// EfficientNet: a weights file that is not there (given with `weights(path)`, or the
    /// fetched one removed).
    #[error(
        "the {model} weights file `{}` does not exist: give the path of a PyTorch state dict of {model}, or leave the weights unset to use the pretrained ones (fetched by `cargo run --release --example fetch_models`)",
        path.display()
    )]
    WeightsFileMissing { model: &'static str, path: PathBuf },
    /// EfficientNet: a weights file that could not be read as a PyTorch state dict.
    #[error("cannot load the {model} weights from `{}`: {source}", path.display())]
    CannotLoadWeights {
        model: &'static str,
        path: PathBuf,
        source: BoxError,
    },
    /// EfficientNet: a state dict of another model. The lists show their first three keys.
    #[error(
        "the weights in `{}` are not {model} weights (a file of another model?): missing {}, not used {}, errors {}. Give a state dict of {model}, or leave the weights unset to use the pretrained ones",
        path.display(),
        first_three(missing),
        first_three(unused),
        first_three(errors)
    )]
    NotTheseWeights {
        model: &'static str,
        path: PathBuf,
        missing: Vec<String>,
        unused: Vec<String>,
        errors: Vec<String>,
    },
    /// A pretrained text file (the ImageNet class names) could not be read.
    #[error("cannot read the {what} `{}`: {source}", path.display())]
    ReadAsset {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The ImageNet class-name table lacks a synset.
    #[error("the ImageNet class names have no entry for {synset}")]
    NoClassName { synset: String },
    /// The ImageNet synset list does not have one entry per class.
    #[error("{found} ImageNet synsets, expected {expected}")]
    SynsetCount { found: usize, expected: usize },

    /// MiniLM: the tokenizer could not be set up (truncation).
    #[error("{what} `{}`: setting truncation failed: {source}", path.display())]
    TokenizerSetup {
        what: String,
        path: PathBuf,
        source: BoxError,
    },
    /// MiniLM: a text the tokenizer failed on.
    #[error("tokenizing {text:?} failed: {source}")]
    Tokenize { text: String, source: BoxError },
    /// MiniLM: a token sequence that is empty or too long.
    #[error("a token sequence has {tokens} tokens; it must have 1 to {max}")]
    SequenceLength { tokens: usize, max: usize },
    /// MiniLM: a token id the model has no embedding for.
    #[error("token id {id} is outside the vocabulary ({vocab})")]
    TokenId { id: u32, vocab: usize },

    /// A prepared input of the wrong size for the model (not from this handler's `prepare`).
    #[error("a prepared image has the wrong size for {model}")]
    PreparedSize { model: &'static str },
    /// An input with a NaN or an infinity.
    #[error("the input {input:?} has a value that is not a finite number")]
    NotFinite { input: Vec<f32> },
    /// A model's outputs could not be read back from the device. `what` names them ("logits").
    #[error("reading the {what} back failed: {source:?}")]
    ReadBack {
        what: String,
        source: TensorReadError,
    },
    /// BLIP: generation options that cannot be used (`reason` says which and why).
    #[error("invalid BLIP generation options: {reason}")]
    GenerationOptions { reason: String },
}

impl Error {
    /// [`Error::ReadBack`] for `what`.
    pub(crate) fn read_back(what: impl Into<String>) -> impl FnOnce(TensorReadError) -> Self {
        let what = what.into();
        move |source| Self::ReadBack { what, source }
    }
}

fn not_used(unused: &Option<Vec<String>>) -> String {
    unused
        .as_ref()
        .map(|u| format!(", not used {u:?}"))
        .unwrap_or_default()
}

/// `[a, b, c, ... n more]`.
fn first_three(keys: &[String]) -> String {
    let mut shown: Vec<String> = keys.iter().take(3).cloned().collect();
    if keys.len() > 3 {
        shown.push(format!("... {} more", keys.len() - 3));
    }
    format!("[{}]", shown.join(", "))
}

#[cfg(test)]
mod tests {
    //! The messages render as the `format!`s they replaced did (written out here as they were).

    use std::path::Path;

    use super::*;

    #[test]
    fn model_file_messages() {
        let path = Path::new("/w/model.safetensors");
        let what = || format!("the all-MiniLM-L6-v2 weights `{}`", path.display());
        let missing = Error::Missing {
            what: "the all-MiniLM-L6-v2 weights".into(),
            path: path.into(),
        };
        assert_eq!(
            missing.to_string(),
            format!("{} do not exist (or are not a file)", what())
        );
        let fits = Error::DoNotFit {
            what: what(),
            missing: vec![("a.weight".into(), "Struct:M".into())],
            errors: Vec::new(),
            unused: Some(vec!["b".into()]),
        };
        assert_eq!(
            fits.to_string(),
            format!(
                "{} do not fit the model: missing {:?}, errors {:?}, not used {:?}",
                what(),
                vec![("a.weight", "Struct:M")],
                Vec::<String>::new(),
                vec!["b"]
            )
        );
        let fits = Error::DoNotFit {
            what: what(),
            missing: Vec::new(),
            errors: Vec::new(),
            unused: None,
        };
        assert!(fits.to_string().ends_with("errors []"), "{fits}");
    }

    #[test]
    fn efficientnet_messages() {
        let keys = |n: usize| (0..n).map(|i| format!("k{i}")).collect::<Vec<_>>();
        let error = Error::NotTheseWeights {
            model: "efficientnet-lite0",
            path: "/w/pnet.pt".into(),
            missing: keys(5),
            unused: keys(1),
            errors: Vec::new(),
        };
        assert_eq!(
            error.to_string(),
            "the weights in `/w/pnet.pt` are not efficientnet-lite0 weights (a file of another model?): missing [k0, k1, k2, ... 2 more], not used [k0], errors []. Give a state dict of efficientnet-lite0, or leave the weights unset to use the pretrained ones"
        );
    }

    #[test]
    fn image_and_device_messages() {
        let image = Error::Image {
            path: "/p/x.png".into(),
            source: ImageError::NotAnImage {
                bytes: 0,
                head: Vec::new(),
            },
        };
        assert_eq!(
            image.to_string(),
            "`/p/x.png`: not an image in a format tandem reads (PNG or JPEG): 0 bytes starting with nothing"
        );
        let bomb = ImageError::TooLarge {
            width: 100_000,
            height: 100_000,
        };
        assert_eq!(
            bomb.to_string(),
            "the image claims 100000x100000 pixels, over the limit of 16384 per side and 64 megapixels (a decompression bomb?); it was not decoded"
        );
        let gpu = Error::from(DeviceError::NoGpu(crate::device::NoGpu::NoAdapter));
        assert_eq!(
            gpu.to_string(),
            "no GPU can be used: wgpu finds no GPU adapter (Vulkan, Metal, DX12 or GL). Run with `--device cpu` (or `--device auto`, which falls back to the CPU)."
        );
    }
}
