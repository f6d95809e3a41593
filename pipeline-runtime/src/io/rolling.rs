//! Rolling file sinks for unbounded runs: a directory of parts, one closed at each checkpoint.
//!
//! A live pipeline never ends, so a file committed "when the run ends" is never seen. A rolling
//! sink writes what arrives into a part under a temporary name (`.part-000007.jsonl.XXXX.partial`,
//! hidden), and at each checkpoint barrier syncs it and renames it into place
//! (`part-000007.jsonl`), so a reader listing the directory sees whole parts only, in sequence
//! order. A checkpoint that brought nothing closes no part. The last part is renamed when the
//! run ends well; if it fails, that part is discarded with the rest of the run's uncommitted
//! output, and its elements, which were not acknowledged, are read again on restart.
//!
//! Parts closed at a checkpoint are durable, so the run may acknowledge its input up to it:
//! nothing is lost across a crash. An element whose part was renamed just before a crash, but
//! whose source had not yet acknowledged it, is read again and written again in a later part:
//! delivery is at least once (a Redis stream sink is exactly once). One run writes to a
//! directory at a time: a new run removes the hidden temporary parts a killed one left behind
//! and numbers its parts after the highest one there.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tempfile::NamedTempFile;

use super::csv::RowBuf;
use super::file::Partial;
use super::{Commit, Share, Sink};

/// How a rolling sink writes one element, and what starts each part (CSV: the header row).
pub trait PartFormat: Send {
    /// The parts' file extension, without the dot.
    const EXTENSION: &'static str;
    /// What the summary calls the format.
    const NAME: &'static str;
    /// Called before the first element of each part.
    fn begin_part(&mut self) {}
    /// Appends `item`, whole, to `out`; on an error appends nothing.
    fn encode<T: Serialize>(&mut self, item: &T, out: &mut Vec<u8>) -> Result<(), String>;
}

/// JSON lines parts (`JsonLines::rolling`).
#[derive(Default)]
pub struct JsonPart;

impl PartFormat for JsonPart {
    const EXTENSION: &'static str = "jsonl";
    const NAME: &'static str = "JSON lines";

    fn encode<T: Serialize>(&mut self, item: &T, out: &mut Vec<u8>) -> Result<(), String> {
        let start = out.len();
        match serde_json::to_writer(&mut *out, item) {
            Ok(()) => {
                out.push(b'\n');
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e.to_string())
            }
        }
    }
}

/// CSV parts, each with its header row (`Csv::rolling`).
#[derive(Default)]
pub struct CsvPart {
    writer: Option<csv::Writer<RowBuf>>,
    row: RowBuf,
}

impl PartFormat for CsvPart {
    const EXTENSION: &'static str = "csv";
    const NAME: &'static str = "CSV";

    fn begin_part(&mut self) {
        self.writer = Some(csv::Writer::from_writer(self.row.clone()));
    }

    fn encode<T: Serialize>(&mut self, item: &T, out: &mut Vec<u8>) -> Result<(), String> {
        let row = &self.row;
        let writer = self
            .writer
            .get_or_insert_with(|| csv::Writer::from_writer(row.clone()));
        let result = writer.serialize(item).and_then(|()| Ok(writer.flush()?));
        // This row (and, first in a part, the header).
        let row = self.row.take();
        result.map_err(|e| e.to_string())?;
        out.extend_from_slice(&row);
        Ok(())
    }
}

/// A directory of parts, one closed per checkpoint: see the module's documentation and
/// `JsonLines::rolling`, `Csv::rolling`.
pub struct RollingWriter<F> {
    dir: PathBuf,
    prefix: String,
    format: F,
    /// The sequence number of the next part.
    next: u64,
    part: Option<OpenPart>,
    buf: Vec<u8>,
    opened: bool,
}

struct OpenPart {
    target: PathBuf,
    /// Elements written to it: a part whose every element failed to encode is not kept.
    written: u64,
    writer: BufWriter<NamedTempFile>,
    _partial: Partial,
}

impl<F: PartFormat + Default> RollingWriter<F> {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            prefix: "part".into(),
            format: F::default(),
            next: 1,
            part: None,
            buf: Vec::new(),
            opened: false,
        }
    }
}

impl<F: PartFormat> RollingWriter<F> {
    /// Names the parts `PREFIX-000001.EXT` (default `part`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn describe_dir(&self) -> String {
        format!(
            "{} parts {}/{}-*.{}",
            F::NAME,
            self.dir.display(),
            self.prefix,
            F::EXTENSION
        )
    }

    fn error(&self, message: impl std::fmt::Display) -> crate::Error {
        crate::Error::Write {
            what: self.describe_dir(),
            message: message.to_string(),
        }
    }

    /// The sequence number of `name` if it is one of this sink's parts (`part-000012.jsonl`).
    fn sequence_of(&self, name: &str) -> Option<u64> {
        let digits = name
            .strip_prefix(&self.prefix)?
            .strip_prefix('-')?
            .strip_suffix(F::EXTENSION)?
            .strip_suffix('.')?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    }

    fn is_leftover(&self, name: &str) -> bool {
        name.strip_prefix('.')
            .and_then(|n| n.strip_prefix(&self.prefix))
            .is_some_and(|n| n.starts_with('-') && n.ends_with(".partial"))
    }

    /// Starts the next part under a hidden temporary name.
    fn begin(&mut self) -> Result<(), String> {
        if self.part.is_none() {
            let target =
                self.dir
                    .join(format!("{}-{:06}.{}", self.prefix, self.next, F::EXTENSION));
            let temp = tempfile::Builder::new()
                .prefix(&format!(
                    ".{}.",
                    target.file_name().unwrap_or_default().to_string_lossy()
                ))
                .suffix(".partial")
                .tempfile_in(&self.dir)
                .map_err(|e| format!("cannot create a part in `{}`: {e}", self.dir.display()))?;
            let partial = Partial::new(temp.path(), &target).map_err(|e| e.to_string())?;
            self.next += 1;
            self.format.begin_part();
            self.part = Some(OpenPart {
                target,
                written: 0,
                _partial: partial,
                writer: BufWriter::with_capacity(256 * 1024, temp),
            });
        }
        Ok(())
    }

    /// The open part if anything was written to it. An empty one is dropped (and its temporary
    /// file removed), its number used again.
    fn take_part(&mut self) -> Option<OpenPart> {
        let part = self.part.take()?;
        if part.written == 0 {
            self.next -= 1;
            return None;
        }
        Some(part)
    }

    /// Syncs the open part, if any, and renames it into place.
    fn close(&mut self) -> crate::Result<()> {
        let Some(part) = self.take_part() else {
            return Ok(());
        };
        let sealed = part.seal().map_err(|e| self.error(e))?;
        sealed.place(&self.dir).map_err(|e| self.error(e))
    }
}

impl OpenPart {
    /// Writes out and syncs the part's data; it is not in place yet.
    fn seal(self) -> Result<Sealed, String> {
        let temp = self
            .writer
            .into_inner()
            .map_err(|e| e.error().to_string())?;
        temp.as_file().sync_data().map_err(|e| e.to_string())?;
        Ok(Sealed {
            temp,
            target: self.target,
            _partial: self._partial,
        })
    }
}

/// A part whose data is synced, under its temporary name.
struct Sealed {
    temp: NamedTempFile,
    target: PathBuf,
    _partial: Partial,
}

impl Sealed {
    /// Renames the part into place (never over an existing part) and makes the rename durable.
    fn place(self, dir: &Path) -> Result<(), String> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ =
                std::fs::set_permissions(self.temp.path(), std::fs::Permissions::from_mode(0o644));
        }
        let target = self.target;
        self.temp.persist_noclobber(&target).map_err(|e| {
            format!(
                "cannot move the part into place as `{}`: {}",
                target.display(),
                e.error
            )
        })?;
        #[cfg(unix)]
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl<T: Serialize, F: PartFormat> Sink<T> for RollingWriter<F> {
    fn uses_positions(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        self.describe_dir()
    }

    fn set_path(&mut self, path: &Path) -> bool {
        self.dir = path.to_owned();
        true
    }

    /// Each worker of a split run writes parts of its own in the directory: `part-w00003-000007.jsonl`.
    fn split(&mut self, share: Share) {
        self.prefix = format!("{}-w{:05}", self.prefix, share.index);
    }

    /// Creates the directory, removes the temporary parts of a run that was killed, and numbers
    /// the parts after the highest one there.
    fn open(&mut self) -> crate::Result<()> {
        let open_error = |source| crate::Error::Open {
            what: "output directory",
            path: self.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(open_error)?;
        let mut highest = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(open_error)? {
            let entry = entry.map_err(open_error)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(sequence) = self.sequence_of(&name) {
                highest = highest.max(sequence);
            } else if self.is_leftover(&name) {
                std::fs::remove_file(entry.path()).map_err(open_error)?;
            }
        }
        self.next = highest + 1;
        self.opened = true;
        Ok(())
    }

    fn write(&mut self, item: T) -> Result<(), String> {
        debug_assert!(self.opened, "sink used before open");
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        // Begun before encoding, so a CSV part's header comes first.
        let result = self.begin().and_then(|()| {
            self.format.encode(&item, &mut buf)?;
            let part = self.part.as_mut().expect("begun");
            part.writer.write_all(&buf).map_err(|e| e.to_string())?;
            part.written += 1;
            Ok(())
        });
        self.buf = buf;
        result
    }

    /// Closes the part written since the last checkpoint: it is durable once this returns.
    fn checkpoint(&mut self) -> crate::Result<bool> {
        self.close()?;
        Ok(true)
    }

    /// The last part, renamed into place when the whole run ends well.
    fn finish(&mut self) -> crate::Result<Option<Box<dyn Commit>>> {
        let Some(part) = self.take_part() else {
            return Ok(None);
        };
        let sealed = part.seal().map_err(|e| self.error(e))?;
        Ok(Some(Box::new(LastPart {
            sealed,
            dir: self.dir.clone(),
            what: self.describe_dir(),
        })))
    }
}

/// The last part of a run, renamed into place at commit.
struct LastPart {
    sealed: Sealed,
    dir: PathBuf,
    what: String,
}

impl Commit for LastPart {
    fn commit(self: Box<Self>) -> crate::Result<()> {
        let LastPart { sealed, dir, what } = *self;
        sealed
            .place(&dir)
            .map_err(|message| crate::Error::Write { what, message })
    }
}
