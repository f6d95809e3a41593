//! The dead-letter output: every element that could not go on, with the stage that refused it,
//! where it came from, why, and (where the element still exists as text) the raw input.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One element that could not go on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The stage that refused it, as written in the pipeline (`try_map(parse_score)`).
    pub stage: String,
    /// The stage's number in the graph (`--graph` shows it).
    pub stage_id: u32,
    /// The source the element came from, as written in the pipeline.
    pub source: String,
    /// Its 1-based record number in that source: the line number for JSON lines, the file line
    /// for CSV, the index for in-memory sources.
    pub position: u64,
    pub error: String,
    /// The raw input where it still exists as text: the line or CSV record that failed to parse.
    /// Elements that failed after parsing are found again by `source` and `position`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// In a run split across workers (`--workers`, `--processes`): the worker whose share held
    /// the element, counted over all processes, and its process. After a `combine_per_key`, the
    /// element is a window's result, made by the worker owning its key: that worker is named,
    /// and `position` is that of the last element folded in, which another worker may have read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<usize>,
}

impl std::fmt::Display for DeadLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stage {} `{}` refused record {} of `{}`: {}",
            self.stage_id, self.stage, self.position, self.source, self.error
        )?;
        if let (Some(worker), Some(process)) = (self.worker, self.process) {
            write!(f, " (worker {worker}, process {process})")?;
        }
        Ok(())
    }
}

/// Where dead letters go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DeadLetterTarget {
    /// Kept in memory and returned in the [`crate::Summary`] (the default for embedded runs).
    #[default]
    Memory,
    /// Appended as JSON lines to this file, created when the first one arrives.
    File(PathBuf),
}

pub(crate) enum DeadLetterOut {
    Memory(Vec<DeadLetter>),
    File {
        path: PathBuf,
        out: Option<BufWriter<File>>,
    },
}

impl DeadLetterOut {
    pub(crate) fn new(target: &DeadLetterTarget) -> Self {
        match target {
            DeadLetterTarget::Memory => Self::Memory(Vec::new()),
            DeadLetterTarget::File(path) => Self::File {
                path: path.clone(),
                out: None,
            },
        }
    }

    pub(crate) fn write(&mut self, letter: DeadLetter) -> crate::Result<()> {
        match self {
            Self::Memory(all) => all.push(letter),
            Self::File { path, out } => {
                let fail = |source| crate::Error::DeadLetters {
                    path: path.clone(),
                    source,
                };
                if out.is_none() {
                    *out = Some(BufWriter::new(File::create(&*path).map_err(fail)?));
                }
                let w = out.as_mut().expect("opened above");
                serde_json::to_writer(&mut *w, &letter).map_err(|e| fail(e.into()))?;
                w.write_all(b"\n").map_err(fail)?;
            }
        }
        Ok(())
    }

    /// Makes the dead letters written so far durable (at a checkpoint).
    pub(crate) fn flush(&mut self) -> crate::Result<()> {
        if let Self::File { path, out: Some(w) } = self {
            let fail = |source| crate::Error::DeadLetters {
                path: path.clone(),
                source,
            };
            w.flush().map_err(fail)?;
            w.get_ref().sync_data().map_err(fail)?;
        }
        Ok(())
    }

    pub(crate) fn close(&mut self) -> crate::Result<(Vec<DeadLetter>, Option<PathBuf>)> {
        match self {
            Self::Memory(all) => Ok((std::mem::take(all), None)),
            Self::File { path, out } => match out.take() {
                Some(mut w) => {
                    w.flush().map_err(|source| crate::Error::DeadLetters {
                        path: path.clone(),
                        source,
                    })?;
                    Ok((Vec::new(), Some(path.clone())))
                }
                None => Ok((Vec::new(), None)),
            },
        }
    }
}
