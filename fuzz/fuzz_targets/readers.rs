//! The JSON-lines and CSV readers on arbitrary bytes: they never panic, and every non-blank
//! line becomes exactly one record (good or bad) at its own line number, so nothing is lost.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use tandem_runtime::io::{Csv, JsonLines, Record, Source};

/// Reads everything; returns the positions of the good and the bad records in order.
fn read_all<S: Source>(mut source: S) -> Vec<(u64, bool)> {
    source.open().expect("an in-memory reader opens");
    let mut seen = Vec::new();
    loop {
        let more = source
            .read_chunk(7, |record| match record {
                Record::Good(at, _) => seen.push((at, true)),
                Record::Bad(at, _) => seen.push((at, false)),
            })
            .expect("reading memory does not fail");
        if !more {
            return seen;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // A limit above any input: then no line is over-long and the count is exact.
    let json = read_all(
        JsonLines::<serde_json::Value>::from_reader("fuzz input", Cursor::new(data.to_vec()))
            .max_line_bytes(1 << 20),
    );
    let expected: Vec<u64> = data
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, _)| i as u64 + 1)
        .collect();
    let positions: Vec<u64> = json.iter().map(|r| r.0).collect();
    assert_eq!(positions, expected, "one record per non-blank line");

    // A tiny limit: over-long lines are bad records, still in order, still no panic.
    let short = read_all(
        JsonLines::<serde_json::Value>::from_reader("fuzz input", Cursor::new(data.to_vec()))
            .max_line_bytes(16),
    );
    assert!(short.windows(2).all(|w| w[0].0 < w[1].0), "positions increase");

    let _ = read_all(Csv::<std::collections::HashMap<String, String>>::from_reader(
        "fuzz input",
        Cursor::new(data.to_vec()),
    ));
});
