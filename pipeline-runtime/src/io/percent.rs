//! Percent-decoding of the parts of a source's or sink's URL (a stream or topic name, a user, a
//! password), strict: a `%` not followed by two hex digits, or bytes that are not UTF-8, are a
//! mistake to report, not text to pass on.

/// `text` percent-decoded, or why it cannot be.
pub(crate) fn decode(text: &str) -> Result<String, String> {
    percent_decode(text).ok_or_else(|| format!("`{text}` is not valid percent-encoded UTF-8"))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
