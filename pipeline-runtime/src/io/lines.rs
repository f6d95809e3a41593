//! Reading lines with a size limit, so one enormous line cannot exhaust memory.

use std::io::{self, BufRead};

/// The default longest line a line-based source accepts (16 MiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

pub(crate) enum Line {
    Eof,
    /// A line is in the buffer; `terminated` is false for a last line without a newline.
    Complete {
        terminated: bool,
    },
    /// The line was longer than the limit: its first `max` bytes are in the buffer and the rest
    /// was skipped. `len` is its full length.
    TooLong {
        len: usize,
    },
}

/// Reads one line (without its `\n` or `\r\n`) into `buf`.
pub(crate) fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    buf.clear();
    let mut len = 0usize;
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if !any {
                Line::Eof
            } else if len > max {
                Line::TooLong { len }
            } else {
                trim_cr(buf);
                Line::Complete { terminated: false }
            });
        }
        any = true;
        let (chunk, found) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        let room = max.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        len += chunk.len();
        let used = chunk.len() + usize::from(found);
        reader.consume(used);
        if found {
            if len > max {
                return Ok(Line::TooLong { len });
            }
            trim_cr(buf);
            return Ok(Line::Complete { terminated: true });
        }
    }
}

fn trim_cr(buf: &mut Vec<u8>) {
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = io::BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            match read_line(&mut r, &mut buf, max).unwrap() {
                Line::Eof => return out,
                Line::Complete { terminated } => out.push(format!(
                    "{}{}",
                    String::from_utf8_lossy(&buf),
                    if terminated { "" } else { "<eof>" }
                )),
                Line::TooLong { len } => out.push(format!("long:{len}")),
            }
        }
    }

    #[test]
    fn splits_lines_across_buffer_refills() {
        assert_eq!(
            lines(b"abcdefg\r\nhi\n\nlast", 100),
            ["abcdefg", "hi", "", "last<eof>"]
        );
    }

    #[test]
    fn over_long_lines_are_reported_and_skipped() {
        assert_eq!(
            lines(b"0123456789\nok\n0123456789", 5),
            ["long:10", "ok", "long:10"]
        );
    }
}
