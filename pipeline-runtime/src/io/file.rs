use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tempfile::{NamedTempFile, TempPath};

use super::Share;

/// Makes a finished output visible. Dropping it without committing discards the output.
pub trait Commit: Send {
    fn commit(self: Box<Self>) -> crate::Result<()>;
}

/// The temporary files of outputs not committed yet, so that a process exiting at once (a second
/// SIGINT) can remove them: destructors do not run on `exit`. Each with its target (made
/// absolute), so that two outputs writing the same file at once are refused.
static PARTIALS: std::sync::Mutex<Vec<(PathBuf, PathBuf)>> = std::sync::Mutex::new(Vec::new());

/// Removes the temporary files of every output not committed yet (their targets are untouched).
pub fn remove_partial_outputs() {
    let partials = PARTIALS.lock().unwrap_or_else(|e| e.into_inner());
    for (path, _) in partials.iter() {
        let _ = std::fs::remove_file(path);
    }
}

/// A temporary file's entry in [`PARTIALS`], removed when dropped.
pub(crate) struct Partial(PathBuf);

impl Partial {
    /// Registers `temp`, the temporary file of `target`; an error if another output of this
    /// process is writing `target` already (the second rename would silently replace the first).
    pub(crate) fn new(temp: &Path, target: &Path) -> crate::Result<Self> {
        let absolute = std::path::absolute(target).unwrap_or_else(|_| target.to_owned());
        let mut partials = PARTIALS.lock().unwrap_or_else(|e| e.into_inner());
        if partials.iter().any(|(_, t)| *t == absolute) {
            return Err(crate::Error::Config(format!(
                "two outputs of this process are writing `{}` at once, and the second would \
                 replace the first when both are committed: two sinks name the same file, or, in \
                 a run split across workers, a sink that wraps a file sink does not pass \
                 `Sink::split` on to it (each worker must write its own part)",
                target.display()
            )));
        }
        partials.push((temp.to_owned(), absolute));
        Ok(Self(temp.to_owned()))
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        let mut partials = PARTIALS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = partials.iter().position(|(p, _)| *p == self.0) {
            partials.swap_remove(at);
        }
    }
}

/// A file written under a temporary name beside its target and renamed into place on commit.
pub(crate) struct AtomicFile {
    target: PathBuf,
    writer: Option<BufWriter<NamedTempFile>>,
    partial: Option<Partial>,
}

impl AtomicFile {
    pub fn create(target: &Path) -> crate::Result<Self> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(&format!(
                ".{}.",
                target
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ))
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(|source| crate::Error::Open {
                what: "output file",
                path: target.to_owned(),
                source,
            })?;
        Ok(Self {
            target: target.to_owned(),
            partial: Some(Partial::new(temp.path(), target)?),
            writer: Some(BufWriter::with_capacity(256 * 1024, temp)),
        })
    }

    pub fn writer(&mut self) -> &mut BufWriter<NamedTempFile> {
        self.writer.as_mut().expect("written after finish")
    }

    pub fn finish(&mut self) -> crate::Result<Option<Box<dyn Commit>>> {
        let Some(writer) = self.writer.take() else {
            return Ok(None);
        };
        let fail = |message: String| crate::Error::Write {
            what: format!("output file `{}`", self.target.display()),
            message,
        };
        let temp = writer
            .into_inner()
            .map_err(|e| fail(e.error().to_string()))?;
        temp.as_file()
            .sync_data()
            .map_err(|e| fail(e.to_string()))?;
        Ok(Some(Box::new(Rename {
            temp: temp.into_temp_path(),
            target: self.target.clone(),
            _partial: self.partial.take(),
        })))
    }
}

struct Rename {
    temp: TempPath,
    target: PathBuf,
    _partial: Option<Partial>,
}

impl Commit for Rename {
    fn commit(self: Box<Self>) -> crate::Result<()> {
        // Temporary files are private (0600); an output gets the mode of the file it replaces,
        // or the usual 0644.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&self.target)
                .map(|m| m.permissions().mode())
                .unwrap_or(0o644);
            let _ = std::fs::set_permissions(&self.temp, std::fs::Permissions::from_mode(mode));
        }
        let target = self.target;
        self.temp.persist(&target).map_err(|e| crate::Error::Write {
            what: format!("output file `{}`", target.display()),
            message: format!("cannot move the finished output into place: {}", e.error),
        })
    }
}

/// Where a writer goes: a file committed at the end, or stdout.
pub(crate) enum Output {
    File(PathBuf, Option<AtomicFile>),
    Stdout(Option<BufWriter<std::io::Stdout>>),
}

impl Output {
    pub fn describe(&self, kind: &str) -> String {
        match self {
            Self::File(p, _) => format!("{kind} file {}", p.display()),
            Self::Stdout(_) => format!("{kind} on stdout"),
        }
    }

    pub fn set_path(&mut self, path: &Path) -> bool {
        match self {
            Self::File(p, _) => {
                *p = path.to_owned();
                true
            }
            Self::Stdout(_) => false,
        }
    }

    /// A worker's part of a split run goes to its own file ([`Share::part_path`]).
    pub fn split(&mut self, share: Share) {
        if let Self::File(p, _) = self {
            *p = share.part_path(p);
        }
    }

    pub fn open(&mut self) -> crate::Result<()> {
        match self {
            Self::File(p, f) => *f = Some(AtomicFile::create(p)?),
            Self::Stdout(w) => *w = Some(BufWriter::new(std::io::stdout())),
        }
        Ok(())
    }

    pub fn writer(&mut self) -> &mut dyn Write {
        match self {
            Self::File(_, f) => f.as_mut().expect("sink used before open").writer(),
            Self::Stdout(w) => w.as_mut().expect("sink used before open"),
        }
    }

    pub fn finish(&mut self) -> crate::Result<Option<Box<dyn Commit>>> {
        match self {
            Self::File(_, f) => match f.as_mut() {
                Some(f) => f.finish(),
                None => Ok(None),
            },
            Self::Stdout(w) => {
                if let Some(w) = w.as_mut() {
                    w.flush().map_err(|e| crate::Error::Write {
                        what: "stdout".into(),
                        message: e.to_string(),
                    })?;
                }
                Ok(None)
            }
        }
    }
}

/// Worker `share.index`'s part of the file at `path`: the bytes from the first line that starts
/// at or after `len * index / peers` to the first that starts at or after the next worker's
/// cut, so that the parts cover the file, line by line, without overlap. Also the lines before
/// the part (none for the first), counted only when a position must be told whole.
pub(crate) fn line_range(
    path: &Path,
    what: &'static str,
    share: Share,
) -> crate::Result<(std::io::Take<File>, Option<std::sync::Arc<LinesBefore>>)> {
    let fail = |source| crate::Error::Open {
        what,
        path: path.to_owned(),
        source,
    };
    let mut file = open_input(path, what)?;
    let len = file.metadata().map_err(fail)?.len();
    let start = line_start_after(&mut file, len, share.index, share.peers).map_err(fail)?;
    let end = line_start_after(&mut file, len, share.index + 1, share.peers).map_err(fail)?;
    file.seek(SeekFrom::Start(start)).map_err(fail)?;
    let before = (start > 0).then(|| {
        std::sync::Arc::new(LinesBefore {
            path: path.to_owned(),
            upto: start,
            counted: std::sync::OnceLock::new(),
        })
    });
    Ok((file.take(end.saturating_sub(start)), before))
}

/// Set on the positions a file source gives the records of its part of a file split across
/// workers: their line numbers counted from the part's start, which [`LinesBefore`] makes the
/// whole file's (see `RunContext::position`). No file has 2^63 lines.
pub(crate) const RELATIVE: u64 = 1 << 63;

/// The lines of a file before a worker's part of it, counted once, when first asked: to number
/// its lines from the file's start, a later worker would otherwise read everything before its
/// part before reading any of it (the last of 8 workers seven eighths of the file), while only a
/// dead letter or a sink keyed by positions needs the number.
#[derive(Debug)]
pub struct LinesBefore {
    path: PathBuf,
    upto: u64,
    counted: std::sync::OnceLock<Result<u64, String>>,
}

impl LinesBefore {
    /// Line `line` of a part as the file's line (for an error's message): the part's own
    /// number where the lines before it cannot be counted, or where there are none (`before`).
    pub(crate) fn whole_line(before: Option<&Self>, line: u64) -> u64 {
        line + before.map_or(0, |b| b.lines().unwrap_or(0))
    }

    /// The number of lines before the part (counted on the first call).
    pub(crate) fn lines(&self) -> Result<u64, String> {
        self.counted
            .get_or_init(|| {
                count_lines(&self.path, self.upto).map_err(|e| {
                    format!(
                        "cannot count the lines before byte {} of {} (to number this worker's \
                         lines): {e}",
                        self.upto,
                        self.path.display()
                    )
                })
            })
            .clone()
    }
}

/// The offset of the first line that starts at or after `len * k / peers` (`len` for the last).
fn line_start_after(file: &mut File, len: u64, k: usize, peers: usize) -> std::io::Result<u64> {
    if k == 0 {
        return Ok(0);
    }
    if k >= peers {
        return Ok(len);
    }
    let cut = (len as u128 * k as u128 / peers as u128) as u64;
    if cut == 0 {
        return Ok(0);
    }
    // A line starts at `cut` if the byte before it ends one.
    file.seek(SeekFrom::Start(cut - 1))?;
    let mut at = cut - 1;
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(len);
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(at + i as u64 + 1);
        }
        at += n as u64;
    }
}

/// The number of newlines in the first `upto` bytes of `file`.
fn count_lines(path: &Path, upto: u64) -> std::io::Result<u64> {
    let mut file = File::open(path)?;
    let mut left = upto;
    let mut lines = 0;
    let mut buf = vec![0; 256 * 1024];
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        left -= n as u64;
    }
    Ok(lines)
}

pub(crate) fn open_input(path: &Path, what: &'static str) -> crate::Result<File> {
    File::open(path).map_err(|source| crate::Error::Open {
        what,
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every split of a few texts: the parts, in worker order, are the file; each starts at a
    /// line's start; and the lines before a part are counted right.
    #[test]
    fn line_ranges_cover_the_file_line_by_line() {
        let long: String = (0..500)
            .map(|i| format!("line {i} {}\n", "x".repeat(i % 37)))
            .collect();
        let texts = [
            "",
            "\n",
            "one line without newline",
            "a\nb\nc\n",
            "a\n\n\nb\n",
            "a very long first line that spans every cut\nshort\n",
            long.as_str(),
        ];
        for text in texts {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), text).unwrap();
            for peers in 1..=7 {
                let mut joined = Vec::new();
                for index in 0..peers {
                    let (mut part, before) =
                        line_range(file.path(), "input", Share { index, peers }).unwrap();
                    let lines_before = before.map_or(0, |b| b.lines().unwrap());
                    let start = joined.len();
                    part.read_to_end(&mut joined).unwrap();
                    assert!(
                        start == 0 || start == joined.len() || joined[start - 1] == b'\n',
                        "part {index} of {peers} starts mid-line in {text:?}"
                    );
                    let counted = joined[..start].iter().filter(|&&b| b == b'\n').count();
                    assert_eq!(lines_before, counted as u64, "{index} of {peers}: {text:?}");
                }
                assert_eq!(joined, text.as_bytes(), "{peers} parts of {text:?}");
            }
        }
    }

    /// Opening a later part reads nothing before it: the lines before are counted when first
    /// asked, once (here the file is gone by then, so asking fails, with the file named).
    #[test]
    fn lines_before_a_part_are_counted_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.txt");
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let share = Share { index: 1, peers: 2 };
        let (_, before) = line_range(&path, "input", share).unwrap();
        let before = before.expect("a later part has lines before it");
        let (mut part, counted) = line_range(&path, "input", share).unwrap();
        let mut own = String::new();
        part.read_to_string(&mut own).unwrap();
        assert_eq!(
            counted.unwrap().lines().unwrap(),
            1000 - own.lines().count() as u64
        );
        std::fs::remove_file(&path).unwrap();
        let error = before.lines().unwrap_err();
        assert!(error.contains("lines.txt"), "{error}");
        assert!(line_range(&path, "input", Share { index: 0, peers: 2 }).is_err());
    }

    #[test]
    fn part_paths_follow_beams_naming() {
        let share = Share {
            index: 3,
            peers: 12,
        };
        assert_eq!(
            share.part_path(Path::new("out/served.jsonl")),
            Path::new("out/served-00003-of-00012.jsonl")
        );
        assert_eq!(
            share.part_path(Path::new("log")),
            Path::new("log-00003-of-00012")
        );
        assert_eq!(
            Share::WHOLE.part_path(Path::new("served.jsonl")),
            Path::new("served.jsonl")
        );
    }
}
