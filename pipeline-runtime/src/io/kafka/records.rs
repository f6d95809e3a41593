//! Messages as records: a message's position in a pipeline, and its value as an element or a bad
//! record.

use serde::de::DeserializeOwned;

use crate::io::jsonl::json_error;
use crate::io::{raw_text, BadRecord};

const OFFSET_BITS: u32 = 48;
const MAX_OFFSET: i64 = (1 << OFFSET_BITS) - 1;
const MAX_PARTITION: i32 = (1 << (64 - OFFSET_BITS)) - 1;

/// `partition << 48 | offset`: the same when a restarted run reads the message again. Partitions
/// above 65,535 and offsets from 2^48 on (neither occurs in practice) share the last position of
/// their range.
pub(super) fn position(partition: i32, offset: i64) -> u64 {
    let partition = partition.clamp(0, MAX_PARTITION) as u64;
    let offset = offset.clamp(0, MAX_OFFSET) as u64;
    partition << OFFSET_BITS | offset
}

pub(super) fn partition_offset(position: u64) -> (i32, i64) {
    (
        (position >> OFFSET_BITS) as i32,
        (position & MAX_OFFSET as u64) as i64,
    )
}

/// A message's value as a `T`, or why not (with the topic, the partition and the offset).
pub(super) fn decode_value<T: DeserializeOwned>(
    topic: &str,
    partition: i32,
    offset: i64,
    value: Option<&[u8]>,
    max_bytes: usize,
) -> Result<T, BadRecord> {
    let bad = |error: String, raw: Option<String>| BadRecord {
        error: format!("topic {topic} partition {partition} offset {offset}: {error}"),
        raw,
    };
    let Some(value) = value else {
        return Err(bad("the message has no value (a tombstone)".into(), None));
    };
    if value.len() > max_bytes {
        return Err(bad(
            format!(
                "the value is {} bytes, more than the limit of {max_bytes} bytes",
                value.len()
            ),
            Some(raw_text(&value[..value.len().min(1024)])),
        ));
    }
    serde_json::from_slice(value).map_err(|e| {
        bad(
            format!("the value is not a valid element: {}", json_error(&e)),
            Some(raw_text(value)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_hold_partition_and_offset_and_round_trip() {
        assert_eq!(position(0, 0), 0);
        assert_eq!(position(0, 41), 41);
        assert_eq!(position(3, 7), 3 * (1 << 48) + 7);
        for (partition, offset) in [(0, 0), (1, 0), (2, 123_456_789), (65_535, MAX_OFFSET)] {
            assert_eq!(
                partition_offset(position(partition, offset)),
                (partition, offset)
            );
        }
        // Positions of one partition are in offset order, and every position of partition p
        // comes before those of p + 1.
        assert!(position(0, MAX_OFFSET) < position(1, 0));
        // Out of range: the last position of the range, never another partition's.
        assert_eq!(position(1, 1 << 50), position(1, MAX_OFFSET));
        assert_eq!(position(70_000, 5), position(65_535, 5));
        assert_eq!(position(-1, -1), 0);
    }

    #[test]
    fn a_bad_value_names_the_topic_partition_and_offset() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Req {
            id: u64,
        }
        let decode = |v: Option<&[u8]>| decode_value::<Req>("requests", 2, 17, v, 16);
        let not_json = decode(Some(b"oops")).unwrap_err();
        assert_eq!(
            not_json.error,
            "topic requests partition 2 offset 17: the value is not a valid element: expected value (column 1)"
        );
        assert_eq!(not_json.raw.as_deref(), Some("oops"));
        let wrong = decode(Some(br#"{"id":"x"}"#)).unwrap_err();
        assert!(
            wrong
                .error
                .ends_with("invalid type: string \"x\", expected u64 (column 9)"),
            "{}",
            wrong.error
        );
        let tombstone = decode(None).unwrap_err();
        assert_eq!(
            tombstone.error,
            "topic requests partition 2 offset 17: the message has no value (a tombstone)"
        );
        assert_eq!(tombstone.raw, None);
        let large = decode(Some(br#"{"id": 1000000000000000}"#)).unwrap_err();
        assert!(
            large
                .error
                .ends_with("the value is 24 bytes, more than the limit of 16 bytes"),
            "{}",
            large.error
        );
        assert_eq!(decode(Some(br#"{"id":7}"#)).unwrap().id, 7);
    }
}
