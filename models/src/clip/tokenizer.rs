//! CLIP's tokenizer: OpenAI's byte-level BPE (`SimpleTokenizer` of the `clip` package) and
//! `clip.tokenize(texts, context_length=77, truncate=True)`.
//!
//! What it does, in the Python's order: clean the text (see below), collapse runs of whitespace
//! to one space and trim, lower-case; split it with CLIP's pattern
//! `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
//! (case-insensitive; run by the `fancy-regex` engine that `tokenizers` exposes as
//! [`SysRegex`]); map each piece's UTF-8 bytes to GPT-2's printable characters; apply the first
//! 48,894 merges of `bpe_simple_vocab_16e6.txt.gz` with `</w>` on each piece's last symbol; look
//! the symbols up in the 49,408-entry vocabulary (256 bytes, the same with `</w>`, one per merge,
//! then `<|startoftext|>` 49406 and `<|endoftext|>` 49407). A text becomes
//! `<|startoftext|> ... <|endoftext|>`, cut to [`CONTEXT_LENGTH`] tokens with `<|endoftext|>`
//! kept last, padded with 0.
//!
//! The cleaning: the Python runs `ftfy.fix_text`, then `html.unescape` twice. Here, ftfy is
//! **not** run in full: its mojibake repair (`fix_encoding`: `cafÃ©` stays as it is) and its own
//! HTML unescaping are left out; what is done is the part of it that changes ordinary text: C1 controls read as
//! windows-1252, curly quotes to straight ones (`’` to `'`), Latin ligatures spelled out (`ﬁ` to
//! `fi`), full-width forms to their NFKC (`Ａ` to `A`, U+3000 to a space), terminal colour
//! escapes and control characters removed, then NFC. The HTML
//! unescaping handles numeric references (`&#39;`, `&#x27;`, with the HTML5 replacements of
//! 0x80..0x9F) and a few named ones (`&amp; &lt; &gt; &quot; &apos; &nbsp;` and some typography);
//! other named references are left as they are. Texts that differ only in what is left out
//! (mojibake, rare entities) can tokenize differently from the Python.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use tokenizers::utils::SysRegex;
use tokenizers::NormalizedString;

use crate::Error;

/// The number of tokens of a tokenized text, start and end tokens included (all CLIP models').
pub const CONTEXT_LENGTH: usize = 77;
/// `<|startoftext|>`.
pub const START_TOKEN: u32 = 49406;
/// `<|endoftext|>`.
pub const END_TOKEN: u32 = 49407;
/// The padding after the end token.
pub const PAD_TOKEN: u32 = 0;
/// How many merges of the file are used (`49152 - 256 - 2`, as the Python).
pub const MERGES: usize = 49152 - 256 - 2;

/// CLIP's pre-tokenization pattern (case-insensitive, as the Python's `re.IGNORECASE`).
const PATTERN: &str = r"(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// Names the merges file in messages.
const WHAT: &str = "the CLIP BPE merges";

/// The pieces' encodings kept at most (the cache is emptied when it is full).
const CACHE_LIMIT: usize = 100_000;

/// CLIP's BPE tokenizer (see the module docs). Cheap to share (`&self` everywhere; the per-piece
/// cache is behind a mutex).
pub struct ClipTokenizer {
    /// GPT-2's byte-to-character table.
    byte_encoder: [char; 256],
    /// Symbol (a string of byte characters, maybe ending in `</w>`) to id.
    encoder: HashMap<String, u32>,
    /// `(left id, right id)` to `(rank, merged id)`.
    merges: HashMap<(u32, u32), (usize, u32)>,
    pattern: SysRegex,
    /// Piece (byte characters) to ids.
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("vocab", &self.encoder.len())
            .field("merges", &self.merges.len())
            .finish_non_exhaustive()
    }
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the others to
/// U+0100 onwards, in byte order. Also the order of the vocabulary's first 256 entries.
fn bytes_to_unicode() -> Vec<(u8, char)> {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut table: Vec<(u8, char)> = (0u32..256)
        .filter(|&b| printable(b))
        .map(|b| (b as u8, char::from_u32(b).unwrap_or('?')))
        .collect();
    let mut n = 0;
    for b in 0u32..256 {
        if !printable(b) {
            table.push((b as u8, char::from_u32(256 + n).unwrap_or('?')));
            n += 1;
        }
    }
    table
}

impl ClipTokenizer {
    /// The tokenizer of the pinned `clip-anytorch` merges ([`crate::fetch::CLIP_BPE`], fetched
    /// on first use).
    pub fn load() -> Result<Self, Error> {
        Self::from_merges_gz(&crate::fetch::CLIP_BPE.path()?)
    }

    /// The tokenizer of a gzipped merges file (`bpe_simple_vocab_16e6.txt.gz`: a header line,
    /// then one `left right` merge a line, best first).
    pub fn from_merges_gz(path: &Path) -> Result<Self, Error> {
        let unloadable = |source: crate::BoxError| Error::Unloadable {
            what: WHAT.to_owned(),
            path: path.to_owned(),
            source,
        };
        if !path.is_file() {
            return Err(Error::Missing {
                what: WHAT.to_owned(),
                path: path.to_owned(),
            });
        }
        let file = std::fs::File::open(path).map_err(|e| unloadable(e.into()))?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .map_err(|e| unloadable(e.into()))?;
        Self::from_merges(&text).map_err(|e| unloadable(e.into()))
    }

    /// The tokenizer of a merges file's text (ungzipped).
    pub fn from_merges(text: &str) -> Result<Self, String> {
        let lines: Vec<&str> = text.split('\n').collect();
        if lines.len() < MERGES + 1 {
            return Err(format!(
                "{} lines, expected a header and at least {MERGES} merges",
                lines.len()
            ));
        }
        let mut merges: Vec<(&str, &str)> = Vec::with_capacity(MERGES);
        for (i, line) in lines[1..=MERGES].iter().enumerate() {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), None) => merges.push((a, b)),
                _ => return Err(format!("line {} is not a merge: {line:?}", i + 2)),
            }
        }

        let bytes = bytes_to_unicode();
        let mut byte_encoder = ['\0'; 256];
        for &(b, c) in &bytes {
            byte_encoder[b as usize] = c;
        }
        // The vocabulary, in the Python's order; a later duplicate takes the id (a dict).
        let mut vocab: Vec<String> = bytes.iter().map(|&(_, c)| c.to_string()).collect();
        vocab.extend(bytes.iter().map(|&(_, c)| format!("{c}</w>")));
        vocab.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        vocab.push("<|startoftext|>".into());
        vocab.push("<|endoftext|>".into());
        let encoder: HashMap<String, u32> = vocab
            .into_iter()
            .enumerate()
            .map(|(id, s)| (s, id as u32))
            .collect();
        let mut ranks = HashMap::with_capacity(MERGES);
        for (rank, (a, b)) in merges.iter().enumerate() {
            // A merge of symbols outside the vocabulary can never apply.
            if let (Some(&l), Some(&r), Some(&m)) = (
                encoder.get(*a),
                encoder.get(*b),
                encoder.get(&format!("{a}{b}")),
            ) {
                ranks.insert((l, r), (rank, m));
            }
        }
        let pattern = SysRegex::new(PATTERN).map_err(|e| e.to_string())?;
        Ok(Self {
            byte_encoder,
            encoder,
            merges: ranks,
            pattern,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The number of token ids (49408).
    pub fn vocab_size(&self) -> usize {
        self.encoder.len()
    }

    /// The token ids of a text, without the start and end tokens (`SimpleTokenizer.encode`).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let text = whitespace_clean(&basic_clean(text)).to_lowercase();
        let mut ids = Vec::new();
        for (start, end) in self.pattern.find_iter(&text) {
            let piece = &text[start..end];
            let encoded: String = piece
                .bytes()
                .map(|b| self.byte_encoder[b as usize])
                .collect();
            ids.extend(self.bpe(&encoded));
        }
        ids
    }

    /// `<|startoftext|> ... <|endoftext|>` for a text, at most `context_length` ids (cut with
    /// the end token kept last, as `clip.tokenize(truncate=True)`), not padded.
    pub fn ids(&self, text: &str, context_length: usize) -> Vec<u32> {
        let mut ids = Vec::with_capacity(context_length);
        ids.push(START_TOKEN);
        ids.extend(self.encode(text));
        ids.push(END_TOKEN);
        if ids.len() > context_length {
            ids.truncate(context_length.max(1));
            if let Some(last) = ids.last_mut() {
                *last = END_TOKEN;
            }
        }
        ids
    }

    /// `clip.tokenize(texts, context_length=77, truncate=True)`: the texts' ids, each
    /// [`CONTEXT_LENGTH`] long (padded with 0), one after the other, and that length.
    pub fn tokenize(&self, texts: &[&str]) -> (Vec<i64>, usize) {
        let mut flat = vec![i64::from(PAD_TOKEN); texts.len() * CONTEXT_LENGTH];
        for (row, text) in texts.iter().enumerate() {
            for (col, id) in self.ids(text, CONTEXT_LENGTH).into_iter().enumerate() {
                flat[row * CONTEXT_LENGTH + col] = i64::from(id);
            }
        }
        (flat, CONTEXT_LENGTH)
    }

    /// The ids of one piece (GPT-2 byte characters), merged (`SimpleTokenizer.bpe`).
    fn bpe(&self, piece: &str) -> Vec<u32> {
        if let Some(&id) = self.encoder.get(piece) {
            if piece == "<|startoftext|>" || piece == "<|endoftext|>" {
                return vec![id];
            }
        }
        if let Some(ids) = self.cache.lock().ok().and_then(|c| c.get(piece).cloned()) {
            return ids;
        }
        let chars: Vec<char> = piece.chars().collect();
        let mut word: Vec<u32> = Vec::with_capacity(chars.len());
        for (i, c) in chars.iter().enumerate() {
            let symbol = if i + 1 == chars.len() {
                format!("{c}</w>")
            } else {
                c.to_string()
            };
            // Every byte character, alone or with `</w>`, is in the vocabulary.
            word.push(self.encoder.get(&symbol).copied().unwrap_or(0));
        }
        loop {
            // The best-ranked pair of the word, then every occurrence of it merged, left to
            // right.
            let best = word
                .windows(2)
                .filter_map(|w| {
                    self.merges
                        .get(&(w[0], w[1]))
                        .map(|&(rank, m)| (rank, w[0], w[1], m))
                })
                .min_by_key(|&(rank, ..)| rank);
            let Some((_, first, second, merged)) = best else {
                break;
            };
            let mut next = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if word[i] == first && i + 1 < word.len() && word[i + 1] == second {
                    next.push(merged);
                    i += 2;
                } else {
                    next.push(word[i]);
                    i += 1;
                }
            }
            word = next;
            if word.len() == 1 {
                break;
            }
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(piece.to_owned(), word.clone());
        }
        word
    }
}

/// Python's `str.isspace` (what `str.strip()` removes): Unicode whitespace and the separators
/// U+001C..U+001F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `basic_clean`: the ftfy subset and the HTML unescaping (see the module docs), trimmed.
fn basic_clean(text: &str) -> String {
    let text = fix_text(text);
    let text = html_unescape(&html_unescape(&text));
    text.trim_matches(is_python_space).to_owned()
}

/// `whitespace_clean`: runs of whitespace to one space, trimmed.
fn whitespace_clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out.trim_matches(is_python_space).to_owned()
}

/// The part of `ftfy.fix_text` done here (see the module docs), in ftfy's order:
/// `fix_c1_controls`, `fix_latin_ligatures`, `fix_character_width`, `uncurl_quotes`,
/// `remove_terminal_escapes`, `remove_control_chars`, NFC.
fn fix_text(text: &str) -> String {
    // fix_c1_controls: U+0080..U+009F as the windows-1252 bytes they were.
    let text: String = text
        .chars()
        .map(|c| match c as u32 {
            code @ 0x80..=0x9f => char::from_u32(CP1252[(code - 0x80) as usize]).unwrap_or(c),
            _ => c,
        })
        .collect();
    let mut fixed = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            // fix_latin_ligatures (`ŉ` is `ʼn`, whose `ʼ` uncurl_quotes straightens)
            'Ĳ' => fixed.push_str("IJ"),
            'ĳ' => fixed.push_str("ij"),
            'ŉ' => fixed.push_str("'n"),
            'Ǳ' => fixed.push_str("DZ"),
            'ǲ' => fixed.push_str("Dz"),
            'ǳ' => fixed.push_str("dz"),
            'Ǆ' => fixed.push_str("DŽ"),
            'ǅ' => fixed.push_str("Dž"),
            'ǆ' => fixed.push_str("dž"),
            'Ǉ' => fixed.push_str("LJ"),
            'ǈ' => fixed.push_str("Lj"),
            'ǉ' => fixed.push_str("lj"),
            'Ǌ' => fixed.push_str("NJ"),
            'ǋ' => fixed.push_str("Nj"),
            'ǌ' => fixed.push_str("nj"),
            'ﬀ' => fixed.push_str("ff"),
            'ﬁ' => fixed.push_str("fi"),
            'ﬂ' => fixed.push_str("fl"),
            'ﬃ' => fixed.push_str("ffi"),
            'ﬄ' => fixed.push_str("ffl"),
            'ﬅ' => fixed.push_str("ſt"),
            'ﬆ' => fixed.push_str("st"),
            // fix_character_width
            '\u{3000}' => fixed.push(' '),
            '\u{ff01}'..='\u{ffef}' => {
                let mut wide = NormalizedString::from(c.to_string());
                wide.nfkc();
                fixed.push_str(wide.get());
            }
            _ => fixed.push(c),
        }
    }
    let mut out = String::with_capacity(fixed.len());
    let mut chars = fixed.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // uncurl_quotes
            '\u{2bc}' | '\u{2018}'..='\u{201b}' => out.push('\''),
            '\u{201c}'..='\u{201f}' => out.push('"'),
            // remove_terminal_escapes: ESC `[` digits and `;`, then a letter.
            '\u{1b}' if chars.peek() == Some(&'[') => {
                let rest: Vec<char> = chars.clone().skip(1).collect();
                let params = rest
                    .iter()
                    .take_while(|c| c.is_ascii_digit() || **c == ';')
                    .count();
                if rest.get(params).is_some_and(char::is_ascii_alphabetic) {
                    for _ in 0..params + 2 {
                        chars.next();
                    }
                }
                // Else the lone ESC goes with the control characters.
            }
            // remove_control_chars
            '\u{0}'..='\u{8}'
            | '\u{b}'
            | '\u{e}'..='\u{1f}'
            | '\u{7f}'
            | '\u{206a}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffc}' => {}
            _ => out.push(c),
        }
    }
    let mut normalized = NormalizedString::from(out);
    normalized.nfc();
    normalized.get().to_owned()
}

/// Named references unescaped: `(name, text, valid without the semicolon)` (HTML5's; only the
/// common ones).
const ENTITIES: &[(&str, &str, bool)] = &[
    ("amp", "&", true),
    ("lt", "<", true),
    ("gt", ">", true),
    ("quot", "\"", true),
    ("apos", "'", false),
    ("nbsp", "\u{a0}", true),
    ("copy", "©", true),
    ("reg", "®", true),
    ("deg", "°", true),
    ("times", "×", true),
    ("trade", "™", false),
    ("hellip", "…", false),
    ("mdash", "—", false),
    ("ndash", "–", false),
    ("lsquo", "‘", false),
    ("rsquo", "’", false),
    ("ldquo", "“", false),
    ("rdquo", "”", false),
    ("laquo", "«", true),
    ("raquo", "»", true),
    ("middot", "·", true),
    ("bull", "•", false),
    ("euro", "€", false),
    ("pound", "£", true),
];

/// HTML5's replacements for numeric references to 0x80..0x9F (windows-1252), 0 for none.
const CP1252: [u32; 32] = [
    0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039,
    0x152, 0x8d, 0x17d, 0x8f, 0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc,
    0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
];

/// Python's `html.unescape`, for numeric references and the [`ENTITIES`].
fn html_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '&' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        match charref(&chars[i + 1..]) {
            Some((replacement, used)) => {
                out.push_str(&replacement);
                i += 1 + used;
            }
            None => {
                out.push('&');
                i += 1;
            }
        }
    }
    out
}

/// The reference after an `&` (Python's `_charref` pattern and `_replace_charref`): its text and
/// how many characters it took, or `None` where the pattern does not match.
fn charref(rest: &[char]) -> Option<(String, usize)> {
    if rest.first() == Some(&'#') {
        let hex = matches!(rest.get(1), Some('x' | 'X'));
        let start = if hex { 2 } else { 1 };
        let digits = rest[start..]
            .iter()
            .take_while(|c| {
                if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            })
            .count();
        if digits == 0 {
            // `&#` followed by no digits: not a reference; `&#x` is not either.
            return None;
        }
        let mut used = start + digits;
        let num = rest[start..used].iter().fold(0u64, |n, c| {
            n.saturating_mul(if hex { 16 } else { 10 })
                .saturating_add(u64::from(c.to_digit(16).unwrap_or(0)))
        });
        if rest.get(used) == Some(&';') {
            used += 1;
        }
        let text = match num {
            0 => "\u{fffd}".to_owned(),
            0x0d => "\r".to_owned(),
            0x80..=0x9f => char::from_u32(CP1252[(num - 0x80) as usize])
                .map(String::from)
                .unwrap_or_default(),
            0xd800..=0xdfff => "\u{fffd}".to_owned(),
            n if n > 0x10ffff => "\u{fffd}".to_owned(),
            0x1..=0x8 | 0xb | 0xe..=0x1f | 0x7f..=0x9f | 0xfdd0..=0xfdef => String::new(),
            n if n & 0xfffe == 0xfffe => String::new(),
            n => char::from_u32(n as u32)
                .map(String::from)
                .unwrap_or_default(),
        };
        return Some((text, used));
    }
    // A name: 1 to 32 characters other than tab, newline, form feed, space, `<&#;`, then
    // maybe `;`.
    let name_len = rest
        .iter()
        .take(32)
        .take_while(|c| !matches!(c, '\t' | '\n' | '\u{c}' | ' ' | '<' | '&' | '#' | ';'))
        .count();
    if name_len == 0 {
        return None;
    }
    let semicolon = rest.get(name_len) == Some(&';');
    let name: String = rest[..name_len].iter().collect();
    let used = name_len + usize::from(semicolon);
    if let Some((_, text, _)) = ENTITIES
        .iter()
        .find(|(n, _, bare)| *n == name && (semicolon || *bare))
    {
        return Some(((*text).to_owned(), used));
    }
    // The longest prefix that is a reference valid without its semicolon, then the rest as is.
    let s: Vec<char> = rest[..used].to_vec();
    for x in (2..s.len()).rev() {
        let prefix: String = s[..x].iter().collect();
        if let Some((_, text, _)) = ENTITIES.iter().find(|(n, _, bare)| *bare && *n == prefix) {
            let tail: String = s[x..].iter().collect();
            return Some((format!("{text}{tail}"), used));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_references() {
        assert_eq!(html_unescape("a &amp; b"), "a & b");
        assert_eq!(html_unescape("&amp;amp;"), "&amp;");
        assert_eq!(html_unescape(&html_unescape("&amp;amp;")), "&");
        assert_eq!(html_unescape("&#39;s &#x27;t &#150;"), "'s 't –");
        assert_eq!(
            html_unescape("&ampere; &lt3 &bogus; & &#;"),
            "&ere; <3 &bogus; & &#;"
        );
        assert_eq!(html_unescape("&#0;&#xD800;"), "\u{fffd}\u{fffd}");
    }

    #[test]
    fn cleaning() {
        assert_eq!(fix_text("it’s “ﬁne” ＡＢ"), "it's \"fine\" AB");
        assert_eq!(whitespace_clean("  a \t\n b  "), "a b");
        assert_eq!(basic_clean("\u{feff} x \u{1c}"), "x");
        assert_eq!(
            fix_text("a\u{1b}[1;31mred\u{1b}[0m \u{1b}x \u{85}"),
            "ared x …"
        );
    }
}
