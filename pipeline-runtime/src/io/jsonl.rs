use std::io::{BufRead, BufReader};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::file::{open_input, Output};
use super::lines::{read_line, Line, DEFAULT_MAX_LINE_BYTES};
use super::{raw_text, BadRecord, Commit, LinesBefore, Record, Share, Sink, Source, RELATIVE};

/// JSON lines files: one JSON value per line.
///
/// `JsonLines::<T>::open(path)` reads `T`s, `JsonLines::create(path)` writes any `Serialize`.
pub struct JsonLines<T = ()>(PhantomData<T>);

impl<T: DeserializeOwned + Send> JsonLines<T> {
    /// Reads a JSON lines file. Blank lines are skipped; a line that is not a valid `T` goes to
    /// the dead letters with its line number.
    pub fn open(path: impl AsRef<Path>) -> JsonLinesReader<T> {
        JsonLinesReader::new(Input::File(path.as_ref().to_owned()))
    }

    /// Reads JSON lines from standard input.
    pub fn stdin() -> JsonLinesReader<T> {
        JsonLinesReader::new(Input::Stdin)
    }

    /// Reads JSON lines from any reader (a socket, a decompressor, bytes in memory); `name`
    /// says what it is in dead letters and the summary.
    pub fn from_reader(
        name: impl Into<String>,
        reader: impl std::io::Read + Send + 'static,
    ) -> JsonLinesReader<T> {
        JsonLinesReader::new(Input::reader(name, reader))
    }
}

impl JsonLines {
    /// Writes a JSON lines file, renamed into place when the run ends well.
    pub fn create(path: impl AsRef<Path>) -> JsonLinesWriter {
        JsonLinesWriter {
            out: Output::File(path.as_ref().to_owned(), None),
            buf: Vec::new(),
        }
    }

    /// Writes JSON lines to standard output.
    pub fn stdout() -> JsonLinesWriter {
        JsonLinesWriter {
            out: Output::Stdout(None),
            buf: Vec::new(),
        }
    }

    /// Writes JSON lines into a directory of parts for a run that does not end: each checkpoint
    /// renames the part written since the last one into place (`part-000001.jsonl`, ...), whole;
    /// at least once across a crash. See `RollingWriter`.
    pub fn rolling(dir: impl AsRef<Path>) -> super::RollingWriter<super::JsonPart> {
        super::RollingWriter::new(dir.as_ref())
    }
}

pub(crate) enum Input {
    File(PathBuf),
    Stdin,
    /// A reader given by the user, taken when the source opens.
    Reader(
        String,
        std::sync::Mutex<Option<Box<dyn std::io::Read + Send>>>,
    ),
}

impl Input {
    pub fn reader(name: impl Into<String>, reader: impl std::io::Read + Send + 'static) -> Self {
        Self::Reader(name.into(), std::sync::Mutex::new(Some(Box::new(reader))))
    }

    pub fn describe(&self, kind: &str) -> String {
        match self {
            Self::File(p) => format!("{kind} file {}", p.display()),
            Self::Stdin => format!("{kind} on stdin"),
            Self::Reader(name, _) => format!("{kind} from {name}"),
        }
    }

    pub fn set_path(&mut self, path: &Path) -> bool {
        match self {
            Self::File(p) => {
                *p = path.to_owned();
                true
            }
            Self::Stdin | Self::Reader(..) => false,
        }
    }

    /// Whether this input can be split across workers: a file, by byte ranges.
    pub fn splits(&self) -> bool {
        matches!(self, Self::File(_))
    }

    /// Opens `share` of the input: for a file split across workers, its byte range cut at line
    /// boundaries ([`super::file::line_range`]), with the lines before it (counted when a
    /// position is told, so that line numbers stay those of the whole file).
    pub fn open_share(
        &self,
        kind: &'static str,
        share: Share,
    ) -> crate::Result<(InputReader, Option<Arc<LinesBefore>>)> {
        match self {
            Self::File(p) if !share.is_whole() => {
                let (range, before) = super::file::line_range(p, kind, share)?;
                Ok((buffered(Box::new(range)), before))
            }
            _ => Ok((self.open(kind)?, None)),
        }
    }

    /// The first line of a file input, with its newline (a CSV header).
    pub fn first_line(&self, kind: &'static str) -> crate::Result<Vec<u8>> {
        let mut line = Vec::new();
        let mut reader = self.open(kind)?;
        reader
            .read_until(b'\n', &mut line)
            .map_err(|source| crate::Error::Read {
                what: self.describe("file"),
                position: 1,
                source,
            })?;
        Ok(line)
    }

    pub fn open(&self, kind: &'static str) -> crate::Result<InputReader> {
        Ok(match self {
            Self::File(p) => buffered(Box::new(open_input(p, kind)?)),
            Self::Stdin => buffered(Box::new(std::io::stdin())),
            Self::Reader(name, reader) => {
                let taken = reader.lock().unwrap_or_else(|e| e.into_inner()).take();
                let reader = taken.ok_or_else(|| {
                    crate::Error::Config(format!(
                        "the reader `{name}` was read already: a reader source runs once"
                    ))
                })?;
                buffered(reader)
            }
        })
    }
}

/// An input's reader: the buffer is concrete, so that taking a line from it is inlined (one
/// dynamic call per buffer refill, not two per line).
pub(crate) type InputReader = BufReader<Box<dyn std::io::Read + Send>>;

fn buffered(reader: Box<dyn std::io::Read + Send>) -> InputReader {
    BufReader::with_capacity(256 * 1024, reader)
}

/// See [`JsonLines::open`].
pub struct JsonLinesReader<T> {
    input: Input,
    share: Share,
    reader: Option<InputReader>,
    line: u64,
    /// A later worker's part of a split file: the lines before it ([`RELATIVE`] is then on the
    /// positions, which count from the part's start).
    before: Option<Arc<LinesBefore>>,
    buf: Vec<u8>,
    max_line_bytes: usize,
    _item: PhantomData<fn() -> T>,
}

impl<T> JsonLinesReader<T> {
    fn new(input: Input) -> Self {
        Self {
            input,
            share: Share::WHOLE,
            reader: None,
            line: 0,
            before: None,
            buf: Vec::new(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            _item: PhantomData,
        }
    }

    /// Lines longer than this go to the dead letters (default 16 MiB).
    pub fn max_line_bytes(mut self, max: usize) -> Self {
        self.max_line_bytes = max;
        self
    }
}

/// serde_json reports positions as "at line 1 column N" of the one-line document; the record's
/// line number is in the dead letter already, so keep only the column.
pub(crate) fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(cut) => format!("{} (column {})", &text[..cut], e.column()),
        None => text,
    }
}

impl<T: DeserializeOwned + Send> Source for JsonLinesReader<T> {
    type Item = T;

    fn describe(&self) -> String {
        self.input.describe("JSON lines")
    }

    fn set_path(&mut self, path: &Path) -> bool {
        self.input.set_path(path)
    }

    fn split(&mut self, share: Share) -> bool {
        self.share = share;
        self.input.splits()
    }

    fn open(&mut self) -> crate::Result<()> {
        let (reader, before) = self.input.open_share("input file", self.share)?;
        self.reader = Some(reader);
        self.line = 0;
        self.before = before;
        Ok(())
    }

    fn lines_before(&self) -> Option<Arc<LinesBefore>> {
        self.before.clone()
    }

    fn read_chunk<E: FnMut(Record<T>)>(&mut self, max: usize, mut emit: E) -> crate::Result<bool> {
        let reader = self.reader.as_mut().expect("source read before open");
        let relative = if self.before.is_some() { RELATIVE } else { 0 };
        let mut emitted = 0;
        while emitted < max {
            let fail = |line, source| crate::Error::Read {
                what: self.input.describe("JSON lines"),
                // The file's line number, for a later worker's part too.
                position: LinesBefore::whole_line(self.before.as_deref(), line),
                source,
            };
            // Fast path: a whole line already in the reader's buffer is parsed in place.
            let available = reader.fill_buf().map_err(|e| fail(self.line, e))?;
            let record =
                match memchr::memchr(b'\n', available).filter(|&end| end <= self.max_line_bytes) {
                    Some(end) => {
                        self.line += 1;
                        let line = match available[..end].last() {
                            Some(b'\r') => &available[..end - 1],
                            _ => &available[..end],
                        };
                        let record = parse_line(line, self.line | relative, true);
                        reader.consume(end + 1);
                        record
                    }
                    None => {
                        let read = read_line(reader, &mut self.buf, self.max_line_bytes)
                            .map_err(|e| fail(self.line, e))?;
                        self.line += 1;
                        match read {
                            Line::Eof => return Ok(false),
                            Line::TooLong { len } => Some(too_long(
                                &self.buf,
                                len,
                                self.line | relative,
                                self.max_line_bytes,
                            )),
                            Line::Complete { terminated } => {
                                parse_line(&self.buf, self.line | relative, terminated)
                            }
                        }
                    }
                };
            // One place hands records on, so that the segment's chain behind `emit` is inlined
            // here (with a second call site it was not, and each record was copied through
            // memory on its way in).
            if let Some(record) = record {
                emit(record);
                emitted += 1;
            }
        }
        Ok(true)
    }
}

/// Parses one line into a record; `None` for a blank line, which holds no record.
#[inline(always)]
fn parse_line<T: DeserializeOwned>(
    line: &[u8],
    number: u64,
    terminated: bool,
) -> Option<Record<T>> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    // A line checked as UTF-8 once is parsed from `&str`: serde_json then skips checking each
    // string it reads, which `from_slice` does (a 1M-line A/B workload spent ~10 % there). A
    // line that is not UTF-8 goes through `from_slice`, for serde_json's error with its place.
    let parsed = match std::str::from_utf8(line) {
        Ok(text) => {
            // `serde_json::from_str` by hand: its `from_trait` is not inlined.
            let mut de = serde_json::Deserializer::from_str(text);
            T::deserialize(&mut de).and_then(|item| de.end().map(|()| item))
        }
        Err(_) => serde_json::from_slice::<T>(line),
    };
    Some(match parsed {
        Ok(item) => Record::Good(number, item),
        Err(e) => Record::Bad(number, bad_line(line, terminated, &e)),
    })
}

/// A line over the limit, as a dead letter (its first KiB).
#[cold]
#[inline(never)]
fn too_long<T>(buf: &[u8], len: usize, number: u64, max: usize) -> Record<T> {
    Record::Bad(
        number,
        BadRecord {
            error: format!("line is {len} bytes, longer than the limit of {max} bytes"),
            raw: Some(raw_text(&buf[..buf.len().min(1024)])),
        },
    )
}

/// A line that is not a valid record, as a dead letter: out of line, so that the loop reading
/// good lines stays small.
#[cold]
#[inline(never)]
fn bad_line(line: &[u8], terminated: bool, e: &serde_json::Error) -> BadRecord {
    let mut error = json_error(e);
    if !terminated && e.is_eof() {
        error = format!("truncated last line (the file ends without a newline): {error}");
    }
    BadRecord {
        error,
        raw: Some(raw_text(line)),
    }
}

/// See [`JsonLines::create`].
pub struct JsonLinesWriter {
    out: Output,
    buf: Vec<u8>,
}

impl<T: Serialize> Sink<T> for JsonLinesWriter {
    fn uses_positions(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        self.out.describe("JSON lines")
    }

    fn set_path(&mut self, path: &Path) -> bool {
        self.out.set_path(path)
    }

    fn split(&mut self, share: Share) {
        self.out.split(share)
    }

    fn open(&mut self) -> crate::Result<()> {
        self.out.open()
    }

    fn write(&mut self, item: T) -> Result<(), String> {
        // Serialize whole before writing, so a value that fails half-way leaves no partial line.
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &item).map_err(|e| e.to_string())?;
        self.buf.push(b'\n');
        self.out
            .writer()
            .write_all(&self.buf)
            .map_err(|e| e.to_string())
    }

    fn finish(&mut self) -> crate::Result<Option<Box<dyn Commit>>> {
        self.out.finish()
    }
}
