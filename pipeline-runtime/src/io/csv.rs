use std::io::Read;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::file::Output;
use super::jsonl::Input;
use super::{raw_text, BadRecord, Commit, LinesBefore, Record, Share, Sink, Source, RELATIVE};

/// CSV files with a header row, read and written through serde.
///
/// `Csv::<T>::open(path)` reads `T`s by column name, `Csv::create(path)` writes any `Serialize`
/// struct (with a header row).
pub struct Csv<T = ()>(PhantomData<T>);

impl<T: DeserializeOwned + Send> Csv<T> {
    /// Reads a CSV file whose first row names the columns. A row that is not a valid `T` (a
    /// missing column, a value of the wrong type) goes to the dead letters with its line number.
    pub fn open(path: impl AsRef<Path>) -> CsvReader<T> {
        CsvReader::new(Input::File(path.as_ref().to_owned()))
    }

    /// Reads CSV from standard input.
    pub fn stdin() -> CsvReader<T> {
        CsvReader::new(Input::Stdin)
    }

    /// Reads CSV from any reader; `name` says what it is in dead letters and the summary.
    pub fn from_reader(
        name: impl Into<String>,
        reader: impl std::io::Read + Send + 'static,
    ) -> CsvReader<T> {
        CsvReader::new(Input::reader(name, reader))
    }
}

impl Csv {
    /// Writes a CSV file, renamed into place when the run ends well.
    pub fn create(path: impl AsRef<Path>) -> CsvWriter {
        CsvWriter {
            out: Output::File(path.as_ref().to_owned(), None),
            writer: None,
            row: RowBuf::default(),
        }
    }

    /// Writes CSV to standard output.
    pub fn stdout() -> CsvWriter {
        CsvWriter {
            out: Output::Stdout(None),
            writer: None,
            row: RowBuf::default(),
        }
    }

    /// Writes CSV into a directory of parts, each with its header row, for a run that does not
    /// end: each checkpoint renames the part written since the last one into place
    /// (`part-000001.csv`, ...), whole; at least once across a crash. See `RollingWriter`.
    pub fn rolling(dir: impl AsRef<Path>) -> super::RollingWriter<super::CsvPart> {
        super::RollingWriter::new(dir.as_ref())
    }
}

/// See [`Csv::open`].
pub struct CsvReader<T> {
    input: Input,
    share: Share,
    /// A later worker's part of a split file (read as the file's header line followed by the
    /// part's lines): the lines before the part. Its positions are then the part's line numbers
    /// flagged [`RELATIVE`] (see `Source::lines_before`).
    before: Option<Arc<LinesBefore>>,
    reader: Option<csv::Reader<Box<dyn std::io::BufRead + Send>>>,
    headers: csv::ByteRecord,
    record: csv::ByteRecord,
    _item: PhantomData<fn() -> T>,
}

impl<T> CsvReader<T> {
    fn new(input: Input) -> Self {
        Self {
            input,
            share: Share::WHOLE,
            before: None,
            reader: None,
            headers: csv::ByteRecord::new(),
            record: csv::ByteRecord::new(),
            _item: PhantomData,
        }
    }
}

fn raw_record(record: &csv::ByteRecord) -> String {
    let joined: Vec<u8> = record.iter().collect::<Vec<_>>().join(&b","[..]);
    raw_text(&joined)
}

/// The csv crate's messages repeat the position ("CSV deserialize error: record 3 (line: 4, ...)");
/// the dead letter has the line already.
fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => match err.field() {
            Some(field) => format!("column {}: {}", field + 1, err.kind()),
            None => err.kind().to_string(),
        },
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8 in column {}", err.field() + 1),
        _ => e.to_string(),
    }
}

impl<T: DeserializeOwned + Send> Source for CsvReader<T> {
    type Item = T;

    fn describe(&self) -> String {
        self.input.describe("CSV")
    }

    fn set_path(&mut self, path: &Path) -> bool {
        self.input.set_path(path)
    }

    fn split(&mut self, share: Share) -> bool {
        self.share = share;
        self.input.splits()
    }

    fn open(&mut self) -> crate::Result<()> {
        let (input, before) = self.input.open_share("input file", self.share)?;
        let mut input: Box<dyn std::io::BufRead + Send> = Box::new(input);
        if before.is_some() {
            // A later worker's part: the header line is in the first worker's.
            let header = self.input.first_line("input file")?;
            input = Box::new(std::io::Cursor::new(header).chain(input));
        }
        self.before = before;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(input);
        self.headers = reader
            .byte_headers()
            .map_err(|e| read_error(&self.input, 1, e))?
            .clone();
        self.reader = Some(reader);
        Ok(())
    }

    fn lines_before(&self) -> Option<Arc<LinesBefore>> {
        self.before.clone()
    }

    fn read_chunk<E: FnMut(Record<T>)>(&mut self, max: usize, mut emit: E) -> crate::Result<bool> {
        let reader = self.reader.as_mut().expect("source read before open");
        // A line of the csv crate's as a position: in a later worker's part, its first line is
        // the file's header, so the part's lines count from its second.
        let relative = self.before.is_some();
        let position = |line: u64| {
            if relative {
                line.saturating_sub(1) | RELATIVE
            } else {
                line
            }
        };
        for _ in 0..max {
            let line = position(reader.position().line());
            let record = match reader.read_byte_record(&mut self.record) {
                Ok(false) => return Ok(false),
                Ok(true) => {
                    let line = self.record.position().map_or(line, |p| position(p.line()));
                    if self.record.len() != self.headers.len() {
                        let error = format!(
                            "the row has {} columns, the header has {}",
                            self.record.len(),
                            self.headers.len()
                        );
                        bad_row(line, error, &self.record)
                    } else {
                        match self.record.deserialize::<T>(Some(&self.headers)) {
                            Ok(item) => Record::Good(line, item),
                            Err(e) => bad_row(line, csv_error(&e), &self.record),
                        }
                    }
                }
                Err(e) if e.is_io_error() => {
                    let line = LinesBefore::whole_line(self.before.as_deref(), line & !RELATIVE);
                    return Err(read_error(&self.input, line, e));
                }
                Err(e) => bad_row(line, csv_error(&e), &self.record),
            };
            // One place hands records on, so that the segment's chain behind `emit` is inlined
            // here (as in the JSON lines reader).
            emit(record);
        }
        Ok(true)
    }
}

/// A row that is not a valid record, as a dead letter.
#[cold]
#[inline(never)]
fn bad_row<T>(line: u64, error: String, record: &csv::ByteRecord) -> Record<T> {
    Record::Bad(
        line,
        BadRecord {
            error,
            raw: Some(raw_record(record)),
        },
    )
}

fn read_error(input: &Input, position: u64, e: csv::Error) -> crate::Error {
    let source = match e.into_kind() {
        csv::ErrorKind::Io(io) => io,
        other => std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{other:?}")),
    };
    crate::Error::Read {
        what: input.describe("CSV"),
        position,
        source,
    }
}

/// See [`Csv::create`].
pub struct CsvWriter {
    out: Output,
    writer: Option<csv::Writer<RowBuf>>,
    row: RowBuf,
}

/// Where the csv writer puts each row before it is written out whole.
#[derive(Clone, Default)]
pub(crate) struct RowBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl RowBuf {
    /// Takes what was written so far.
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl std::io::Write for RowBuf {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<T: Serialize> Sink<T> for CsvWriter {
    fn uses_positions(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        self.out.describe("CSV")
    }

    fn set_path(&mut self, path: &Path) -> bool {
        self.out.set_path(path)
    }

    fn split(&mut self, share: Share) {
        self.out.split(share)
    }

    fn open(&mut self) -> crate::Result<()> {
        self.writer = Some(csv::Writer::from_writer(self.row.clone()));
        self.out.open()
    }

    fn write(&mut self, item: T) -> Result<(), String> {
        // Each row is serialized into memory first, so a failing value leaves no partial row.
        let writer = self.writer.as_mut().expect("sink used before open");
        let result = writer
            .serialize(&item)
            .and_then(|()| writer.flush().map_err(Into::into));
        let row = self.row.take();
        result.map_err(|e| e.to_string())?;
        self.out.writer().write_all(&row).map_err(|e| e.to_string())
    }

    fn finish(&mut self) -> crate::Result<Option<Box<dyn Commit>>> {
        self.out.finish()
    }
}
