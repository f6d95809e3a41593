//! The hand-written Redis relay shared by `redis_relay` and `redis_latency`: the anchor the
//! pipeline is compared with, reading through a consumer group and writing with the same crate.
//! Included with `#[path = "common/relay.rs"] mod relay;`.

use redis::Connection;

/// One entry of an `XREADGROUP` reply: its id and its fields.
pub type Entry = (String, Vec<(String, String)>);

type Reply = Vec<(String, Vec<Entry>)>;

/// Creates group `g` on `input` at its start (and the stream, if it is not there yet).
pub fn create_group(conn: &mut Connection, input: &str) {
    let _: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(input)
        .arg("g")
        .arg("0")
        .arg("MKSTREAM")
        .query(conn);
}

/// Reads up to `count` new entries as consumer `c` of group `g`, waiting up to `block_ms`.
pub fn read_group(conn: &mut Connection, input: &str, count: usize, block_ms: u64) -> Vec<Entry> {
    let reply: Option<Reply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c")
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(block_ms)
        .arg("STREAMS")
        .arg(input)
        .arg(">")
        .query(conn)
        .unwrap();
    reply
        .and_then(|mut r| r.pop())
        .map(|(_, entries)| entries)
        .unwrap_or_default()
}

/// Appends `answer(payload)` of each entry's field `data` to `output` (`XADD`s pipelined `write`
/// at a time), then acknowledges the entries; returns how many it moved.
pub fn relay(
    conn: &mut Connection,
    input: &str,
    output: &str,
    entries: &[Entry],
    write: usize,
    answer: impl Fn(&str) -> Vec<u8>,
) -> u64 {
    if entries.is_empty() {
        return 0;
    }
    for chunk in entries.chunks(write) {
        let mut pipe = redis::pipe();
        for (_, fields) in chunk {
            pipe.cmd("XADD")
                .arg(output)
                .arg("*")
                .arg("data")
                .arg(answer(&fields[0].1))
                .ignore();
        }
        pipe.query::<()>(conn).unwrap();
    }
    let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
    redis::cmd("XACK")
        .arg(input)
        .arg("g")
        .arg(&ids)
        .query::<()>(conn)
        .unwrap();
    entries.len() as u64
}
