//! Where a pipeline's workers run: `--workers N` threads in each of `--processes P` processes
//! (this one `--process I`), whose addresses a `--hostfile` lists. The options only; running on
//! them is `distributed` (feature `timely`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::Share;

/// Where a pipeline's workers run: threads in this process, and the other processes of the run.
///
/// The default (one worker, one process) is today's executor; with more, the pipeline runs on
/// timely dataflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// Worker threads in each process (`--workers`), at least 1.
    pub workers: usize,
    /// Processes taking part (`--processes`), at least 1.
    pub processes: usize,
    /// This process's index among them (`--process`), from 0 to `processes - 1`.
    pub process: usize,
    /// A file of `host:port` lines, one per process in process order (`--hostfile`). Without
    /// one, process `i` listens on `localhost:2101+i` (timely's own default).
    pub hostfile: Option<PathBuf>,
}

impl Default for Cluster {
    fn default() -> Self {
        Self {
            workers: 1,
            processes: 1,
            process: 0,
            hostfile: None,
        }
    }
}

impl Cluster {
    /// `workers` threads in this one process.
    pub fn threads(workers: usize) -> Self {
        Self {
            workers,
            ..Self::default()
        }
    }

    /// Whether these are the default options: one worker in one process, the pipeline runs as
    /// it does without this module.
    pub fn is_single(&self) -> bool {
        self.workers == 1 && self.processes == 1
    }

    /// Checks the numbers: at least one worker and one process, this process among them.
    pub fn check(&self) -> Result<()> {
        if self.workers == 0 {
            return Err(Error::Config("--workers must be at least 1".into()));
        }
        if self.processes == 0 {
            return Err(Error::Config("--processes must be at least 1".into()));
        }
        if self.process >= self.processes {
            return Err(Error::Config(format!(
                "--process {} is out of range: with --processes {} it is from 0 to {}",
                self.process,
                self.processes,
                self.processes - 1
            )));
        }
        Ok(())
    }

    /// Workers in all processes.
    pub fn peers(&self) -> usize {
        self.workers * self.processes
    }

    /// The share of this process's local worker `local` (timely numbers workers process by
    /// process).
    pub fn share(&self, local: usize) -> Share {
        Share {
            index: self.process * self.workers + local,
            peers: self.peers(),
        }
    }

    /// The address of every process, in process order: the hostfile's, or `localhost:2101+i`.
    pub fn addresses(&self) -> Result<Vec<String>> {
        match &self.hostfile {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::Open {
                    what: "hostfile",
                    path: path.clone(),
                    source,
                })?;
                parse_hostfile(&text, path, self.processes)
            }
            None => Ok((0..self.processes)
                .map(|i| format!("localhost:{}", 2101 + i))
                .collect()),
        }
    }
}

/// Parses a hostfile's text: one `host:port` per process, blank lines and lines starting with `#`
/// skipped; exactly `processes` of them, no address twice.
fn parse_hostfile(text: &str, path: &Path, processes: usize) -> Result<Vec<String>> {
    let file = path.display();
    let mut addresses: Vec<(usize, String)> = Vec::new();
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: String| {
            Error::Config(format!(
                "hostfile `{file}`, line {number}: `{line}` is not `host:port` ({why})"
            ))
        };
        let Some((host, port)) = line.rsplit_once(':') else {
            return Err(bad("no `:` before a port".into()));
        };
        if host.is_empty() || host.chars().any(char::is_whitespace) {
            return Err(bad("no host name before the `:`".into()));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => {
                return Err(bad(format!(
                    "the port `{port}` is not a number from 1 to 65535"
                )))
            }
        }
        if let Some((first, _)) = addresses.iter().find(|(_, a)| a == line) {
            return Err(Error::Config(format!(
                "hostfile `{file}`, line {number}: `{line}` is already the address of line {first} \
                 (each process needs an address of its own)"
            )));
        }
        addresses.push((number, line.to_owned()));
    }
    if addresses.len() != processes {
        return Err(Error::Config(format!(
            "hostfile `{file}` lists {} address{} but --processes is {processes}: it needs one \
             `host:port` line per process, in process order",
            addresses.len(),
            if addresses.len() == 1 { "" } else { "es" },
        )));
    }
    Ok(addresses.into_iter().map(|(_, a)| a).collect())
}
