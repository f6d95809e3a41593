//! Stream entries: ids, the replies of `XREADGROUP` and `XAUTOCLAIM` (RESP2 or RESP3), and an
//! entry's payload as an element or a bad record.

use ::redis::{RedisResult, Value};
use serde::de::DeserializeOwned;

use super::retry::unexpected;
use crate::io::jsonl::json_error;
use crate::io::{raw_text, BadRecord};

/// A stream entry id, `MILLISECONDS-SEQUENCE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct EntryId(pub u64, pub u64);

impl EntryId {
    /// The entry's position in a pipeline: `ms * 1_000_000 + seq` (so `1700000000000-3` is
    /// 1700000000000000003), which survives a restart. Sequence numbers from a million up (only
    /// with ids chosen by hand, a million entries in one millisecond) share the last position.
    pub fn position(self) -> u64 {
        self.0
            .saturating_mul(1_000_000)
            .saturating_add(self.1.min(999_999))
    }

    pub fn parse(text: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(text).ok()?;
        let (ms, seq) = text.split_once('-')?;
        Some(Self(ms.parse().ok()?, seq.parse().ok()?))
    }
}

/// A set of entry ids, hashed with a multiply-rotate hash (FxHash's): `std`'s SipHash was a
/// few percent of a relay's instructions, and ids come from the server, not from an attacker.
pub(super) type IdSet = std::collections::HashSet<EntryId, std::hash::BuildHasherDefault<IdHasher>>;

#[derive(Default)]
pub(super) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b.into());
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

impl ::redis::ToRedisArgs for EntryId {
    fn write_redis_args<W: ?Sized + ::redis::RedisWrite>(&self, out: &mut W) {
        out.write_arg_fmt(self)
    }
}

pub(super) struct Entry {
    pub id: EntryId,
    /// `None` for an entry deleted from the stream while it was pending.
    pub fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

pub(super) fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

fn into_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.into_bytes()),
        _ => None,
    }
}

/// A RESP2 flat `[k, v, k, v]` array or a RESP3 map, as pairs.
pub(super) fn pairs(v: Value) -> Option<Vec<(Value, Value)>> {
    match v {
        Value::Map(pairs) => Some(pairs),
        Value::Array(items) if items.len() % 2 == 0 => {
            let mut items = items.into_iter();
            let mut pairs = Vec::with_capacity(items.len() / 2);
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((k, v));
            }
            Some(pairs)
        }
        _ => None,
    }
}

/// `[[id, [field, value, ...] | nil], ...]`
pub(super) fn parse_entries(v: Value) -> RedisResult<Vec<Entry>> {
    let Value::Array(items) = v else {
        return Err(unexpected("unexpected list of stream entries", &v));
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Array(parts) = item else {
                return Err(unexpected("unexpected stream entry", &item));
            };
            let mut parts = parts.into_iter();
            let id = parts.next().unwrap_or(Value::Nil);
            let Some(id) = bytes(&id).and_then(EntryId::parse) else {
                return Err(unexpected("unexpected stream entry id", &id));
            };
            let fields = match parts.next() {
                None | Some(Value::Nil) => None,
                Some(fields) => {
                    let pairs = pairs(fields).and_then(|pairs| {
                        pairs
                            .into_iter()
                            .map(|(k, v)| Some((into_bytes(k)?, into_bytes(v)?)))
                            .collect::<Option<Vec<_>>>()
                    });
                    match pairs {
                        Some(pairs) => Some(pairs),
                        None => {
                            // Named by its id: formatting every entry's fields in advance,
                            // to show them here, took a sixth of a relay's time.
                            return Err(unexpected(
                                "unexpected fields of a stream entry (not pairs of strings)",
                                &Value::SimpleString(format!("entry {id}")),
                            ));
                        }
                    }
                }
            };
            Ok(Entry { id, fields })
        })
        .collect()
}

/// The reply of `XREADGROUP` on one stream: nil (nothing came), `[[stream, entries]]` or, in
/// RESP3, `{stream: entries}`.
pub(super) fn parse_read(v: Value) -> RedisResult<Vec<Entry>> {
    let streams = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(pairs) => pairs,
        Value::Array(items) => {
            let mut streams = Vec::new();
            for item in items {
                match item {
                    Value::Array(pair) if pair.len() == 2 => {
                        let mut pair = pair.into_iter();
                        streams.push((
                            pair.next().unwrap_or_default(),
                            pair.next().unwrap_or_default(),
                        ));
                    }
                    other => return Err(unexpected("unexpected reply to XREADGROUP", &other)),
                }
            }
            streams
        }
        other => return Err(unexpected("unexpected reply to XREADGROUP", &other)),
    };
    let mut entries = Vec::new();
    for (_, stream_entries) in streams {
        entries.extend(parse_entries(stream_entries)?);
    }
    Ok(entries)
}

/// An entry's payload as a `T`, or why not (with the stream and the entry id).
pub(super) fn decode_entry<T: DeserializeOwned>(
    stream: &str,
    id: EntryId,
    fields: &[(Vec<u8>, Vec<u8>)],
    field: &str,
    max_bytes: usize,
) -> Result<T, BadRecord> {
    let bad = |error: String, raw: String| BadRecord {
        error: format!("stream {stream} entry {id}: {error}"),
        raw: Some(raw),
    };
    let Some((_, payload)) = fields.iter().find(|(k, _)| k == field.as_bytes()) else {
        let names: Vec<String> = fields
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect();
        let mut shown = Vec::new();
        for (k, v) in fields {
            shown.extend_from_slice(k);
            shown.push(b'=');
            shown.extend_from_slice(v);
            shown.push(b' ');
        }
        shown.pop();
        return Err(bad(
            format!(
                "no field `{field}` (its fields: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            ),
            raw_text(&shown),
        ));
    };
    if payload.len() > max_bytes {
        return Err(bad(
            format!(
                "field `{field}` is {} bytes, more than the limit of {max_bytes} bytes",
                payload.len()
            ),
            raw_text(&payload[..payload.len().min(1024)]),
        ));
    }
    serde_json::from_slice(payload).map_err(|e| {
        bad(
            format!("field `{field}` is not a valid element: {}", json_error(&e)),
            raw_text(payload),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_payload_names_the_stream_and_the_entry() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Req {
            id: u64,
        }
        let id = EntryId(1700000000000, 3);
        let fields = |k: &str, v: &str| vec![(k.as_bytes().to_vec(), v.as_bytes().to_vec())];
        let decode = |f: &[(Vec<u8>, Vec<u8>)]| decode_entry::<Req>("requests", id, f, "data", 16);
        let not_json = decode(&fields("data", "oops")).unwrap_err();
        assert!(
            not_json
                .error
                .starts_with("stream requests entry 1700000000000-3: field `data` is not"),
            "{}",
            not_json.error
        );
        assert_eq!(not_json.raw.as_deref(), Some("oops"));
        let missing = decode(&fields("other", "1")).unwrap_err();
        assert!(
            missing
                .error
                .ends_with("no field `data` (its fields: other)"),
            "{}",
            missing.error
        );
        let large = decode(&fields("data", "{\"id\": 1000000000000000}")).unwrap_err();
        assert!(
            large.error.contains("more than the limit of 16 bytes"),
            "{}",
            large.error
        );
        assert_eq!(decode(&fields("data", "{\"id\":7}")).unwrap().id, 7);
    }

    #[test]
    fn entry_ids_round_trip() {
        assert_eq!(
            EntryId::parse(b"1700000000000-3"),
            Some(EntryId(1700000000000, 3))
        );
        assert_eq!(EntryId(5, 0).to_string(), "5-0");
        assert_eq!(EntryId::parse(b"5"), None);
        assert_eq!(EntryId::parse(b"a-b"), None);
    }
}
