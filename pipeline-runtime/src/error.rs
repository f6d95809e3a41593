use std::path::PathBuf;

use crate::deadletter::DeadLetter;

/// Everything that can stop a run. Bad *records* never appear here: they go to the dead letters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot open {what} `{}`: {source}", path.display())]
    Open {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading {what} failed after record {position}: {source}")]
    Read {
        what: String,
        position: u64,
        source: std::io::Error,
    },
    #[error("writing to {what} failed: {message}")]
    Write { what: String, message: String },
    #[error("cannot write dead letters to `{}`: {source}", path.display())]
    DeadLetters {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stopped at the first bad record (--fail-fast): {0}")]
    FailFast(Box<DeadLetter>),
    #[error("{0}")]
    Config(String),
    #[error("a pipeline thread failed unexpectedly: {0}")]
    Internal(String),
    /// Another process or worker of a split run failed, so this one stopped and committed
    /// nothing.
    #[error("{0}")]
    Peer(String),
}

/// `Result` with tandem's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
