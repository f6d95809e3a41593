//! The preprocessing: the shipped WordPiece tokenizer, texts to token ids.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams};

use super::MAX_TOKENS;
use crate::Error;

/// Names the tokenizer in messages.
const WHAT: &str = "the all-MiniLM-L6-v2 tokenizer";

/// The shipped WordPiece tokenizer, set up as sentence-transformers uses it: truncation at
/// [`MAX_TOKENS`] (tokenizer.json says 128) and no padding (tokenizer.json pads to 128; batches
/// are padded by [`embed`](super::embed) instead).
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer, Error> {
    let mut tokenizer = Tokenizer::from_file(path).map_err(|source| Error::Unloadable {
        what: WHAT.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: MAX_TOKENS,
            ..TruncationParams::default()
        }))
        .map_err(|source| Error::TokenizerSetup {
            what: WHAT.to_owned(),
            path: path.to_owned(),
            source,
        })?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

/// Token ids for one text: `[CLS] ... [SEP]`, truncated to [`MAX_TOKENS`].
pub fn tokenize(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>, Error> {
    tokenizer
        .encode(text, true)
        .map(|encoding| encoding.get_ids().to_vec())
        .map_err(|source| Error::Tokenize {
            text: text.to_owned(),
            source,
        })
}
