//! Running on several worker threads and processes with timely dataflow (feature `timely`).
//!
//! The one module that uses `timely` (pinned to `=0.32.0`): the rest of the runtime knows nothing
//! of it. What is here so far:
//!
//! - [`Cluster`]: the options `--workers N` (threads per process), `--processes P`, `--process I`
//!   and `--hostfile FILE`, and [`timely_config`], which turns them into timely's configuration
//!   directly. timely's own argument parsing (getopts, `-w -n -p -h`) is left out (the crate is
//!   built without its `getopts` feature): `-h` would clash with clap's help.
//! - [`run_in_operator`]: the shape of the lowering, for measuring it: every worker runs one
//!   timely operator around a [`WorkerTask`] (a fused chain that reads its share of the input and
//!   writes to a sink of its own), activated chunk by chunk until the task has nothing left.
//!
//! Not built yet: lowering a `pipeline!` graph (each fused segment one operator, merge a concat,
//! `window` + `combine_per_key` an exchange by key with pre-aggregation, checkpoints as epochs).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Probe;
use timely::{CommunicationConfig, WorkerConfig};

use crate::error::{Error, Result};

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

/// timely's configuration for `cluster`, built directly (no argument parsing): one thread, one
/// process of `workers` threads, or a cluster of `processes` connected over TCP.
pub fn timely_config(cluster: &Cluster) -> Result<timely::Config> {
    if cluster.workers == 0 {
        return Err(Error::Config("--workers must be at least 1".into()));
    }
    if cluster.processes == 0 {
        return Err(Error::Config("--processes must be at least 1".into()));
    }
    if cluster.process >= cluster.processes {
        return Err(Error::Config(format!(
            "--process {} is out of range: with --processes {} it is from 0 to {}",
            cluster.process,
            cluster.processes,
            cluster.processes - 1
        )));
    }
    // Read (and so check) a hostfile even for one process: a bad one is a mistake either way.
    let addresses = cluster.addresses()?;
    let communication = match (cluster.processes, cluster.workers) {
        (1, 1) => CommunicationConfig::Thread,
        (1, workers) => CommunicationConfig::Process(workers),
        (_, workers) => CommunicationConfig::Cluster {
            threads: workers,
            process: cluster.process,
            addresses,
            report: false,
            zerocopy: false,
        },
    };
    Ok(timely::Config {
        communication,
        worker: WorkerConfig::default(),
    })
}

/// Which worker a task runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerId {
    /// This worker's index among all workers of all processes.
    pub index: usize,
    /// How many workers there are in all.
    pub peers: usize,
}

/// The work of one worker inside its operator: a fused chain fed from this worker's share of the
/// input, ending in a sink of its own.
pub trait WorkerTask: 'static {
    /// What the worker hands back when its task is done (its sink's result).
    type Output: Send + 'static;

    /// Does the next chunk of work; `false` once there is nothing left (then it is not called
    /// again).
    fn step(&mut self) -> bool;

    /// Called once `step` has returned `false`.
    fn finish(self) -> Self::Output;
}

/// Runs, on every worker of this process, a dataflow of one timely operator that calls the
/// worker's task (made by `make`) chunk by chunk, reactivating itself until the task is done, and
/// steps the worker until a probe behind the operator sees it finished. Returns the outputs of
/// this process's workers, in worker order.
pub fn run_in_operator<W, F>(cluster: &Cluster, make: F) -> Result<Vec<W::Output>>
where
    W: WorkerTask,
    F: Fn(WorkerId) -> W + Send + Sync + 'static,
{
    let config = timely_config(cluster)?;
    let guards = timely::execute(config, move |worker| {
        let id = WorkerId {
            index: worker.index(),
            peers: worker.peers(),
        };
        let task = Rc::new(RefCell::new(Some(make(id))));
        let in_operator = Rc::clone(&task);
        let probe = worker.dataflow::<u64, _, _>(move |scope| {
            let stream = source::<_, CapacityContainerBuilder<Vec<()>>, _, _>(
                scope,
                "segment",
                move |capability, info| {
                    let activator = scope.activator_for(info.address);
                    let mut capability = Some(capability);
                    move |_output| {
                        // timely may schedule the operator again after it let go of its
                        // capability (when progress arrives from other workers): a finished task
                        // is not stepped again.
                        if capability.is_none() {
                            return;
                        }
                        let more = match in_operator.borrow_mut().as_mut() {
                            Some(task) => task.step(),
                            None => false,
                        };
                        if more {
                            activator.activate();
                        } else {
                            // Released: the probe sees the operator finished.
                            drop(capability.take());
                        }
                    }
                },
            );
            stream.probe().0
        });
        worker.step_while(|| !probe.done());
        let task = task.borrow_mut().take();
        task.expect("the task is taken once, after its operator is done")
            .finish()
    })
    .map_err(|e| Error::Config(format!("cannot start the timely workers: {e}")))?;
    guards
        .join()
        .into_iter()
        .map(|r| r.map_err(|e| Error::Internal(format!("a timely worker failed: {e}"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostfile(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn cluster(processes: usize, process: usize, file: &tempfile::NamedTempFile) -> Cluster {
        Cluster {
            workers: 2,
            processes,
            process,
            hostfile: Some(file.path().to_owned()),
        }
    }

    fn error(cluster: &Cluster) -> String {
        timely_config(cluster).unwrap_err().to_string()
    }

    #[test]
    fn default_is_one_thread() {
        let config = timely_config(&Cluster::default()).unwrap();
        assert!(matches!(config.communication, CommunicationConfig::Thread));
        assert!(Cluster::default().is_single());
    }

    #[test]
    fn workers_in_one_process() {
        let config = timely_config(&Cluster::threads(3)).unwrap();
        assert!(matches!(
            config.communication,
            CommunicationConfig::Process(3)
        ));
        assert!(!Cluster::threads(3).is_single());
    }

    #[test]
    fn hostfile_gives_the_cluster_addresses() {
        let file = hostfile("# the two\n\nhost-a:2101\n  10.0.0.2:2102  \n");
        let config = timely_config(&cluster(2, 1, &file)).unwrap();
        match config.communication {
            CommunicationConfig::Cluster {
                threads,
                process,
                addresses,
                ..
            } => {
                assert_eq!((threads, process), (2, 1));
                assert_eq!(addresses, ["host-a:2101", "10.0.0.2:2102"]);
            }
            other => panic!("not a cluster: {other:?}"),
        }
    }

    #[test]
    fn without_hostfile_processes_listen_on_localhost() {
        let config = timely_config(&Cluster {
            workers: 1,
            processes: 3,
            process: 2,
            hostfile: None,
        })
        .unwrap();
        match config.communication {
            CommunicationConfig::Cluster { addresses, .. } => {
                assert_eq!(
                    addresses,
                    ["localhost:2101", "localhost:2102", "localhost:2103"]
                )
            }
            other => panic!("not a cluster: {other:?}"),
        }
    }

    #[test]
    fn missing_hostfile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.txt");
        let err = error(&Cluster {
            workers: 1,
            processes: 2,
            process: 0,
            hostfile: Some(path.clone()),
        });
        assert!(err.starts_with("cannot open hostfile"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn hostfile_with_too_few_or_too_many_lines() {
        let file = hostfile("a:1\nb:2\n");
        let err = error(&cluster(3, 0, &file));
        assert!(
            err.contains("lists 2 addresses but --processes is 3"),
            "{err}"
        );
        let file = hostfile("a:1\nb:2\nc:3\n");
        let err = error(&cluster(2, 0, &file));
        assert!(
            err.contains("lists 3 addresses but --processes is 2"),
            "{err}"
        );
        let file = hostfile("a:1\n");
        let err = error(&cluster(2, 0, &file));
        assert!(err.contains("lists 1 address but"), "{err}");
    }

    #[test]
    fn process_index_out_of_range() {
        let file = hostfile("a:1\nb:2\n");
        let err = error(&cluster(2, 2, &file));
        assert_eq!(
            err,
            "--process 2 is out of range: with --processes 2 it is from 0 to 1"
        );
    }

    #[test]
    fn zero_workers_or_processes() {
        assert_eq!(error(&Cluster::threads(0)), "--workers must be at least 1");
        let none = Cluster {
            processes: 0,
            ..Cluster::default()
        };
        assert_eq!(error(&none), "--processes must be at least 1");
    }

    #[test]
    fn unparsable_addresses() {
        for (line, why) in [
            ("hostname", "no `:` before a port"),
            (":2101", "no host name"),
            ("host:", "the port `` is not a number"),
            ("host:http", "the port `http` is not a number"),
            (
                "host:70000",
                "the port `70000` is not a number from 1 to 65535",
            ),
            ("host:0", "the port `0` is not"),
            ("two hosts:1", "no host name"),
        ] {
            let file = hostfile(&format!("ok:1\n\n{line}\n"));
            let err = error(&cluster(2, 0, &file));
            assert!(
                err.contains(&format!("line 3: `{line}` is not `host:port`")),
                "{line}: {err}"
            );
            assert!(err.contains(why), "{line}: {err}");
        }
    }

    #[test]
    fn the_same_address_twice() {
        let file = hostfile("a:1\na:1\n");
        let err = error(&cluster(2, 0, &file));
        assert!(
            err.contains("line 2: `a:1` is already the address of line 1"),
            "{err}"
        );
    }

    /// Counts the numbers below `end` that are its worker's (by index modulo workers).
    struct Count {
        next: u64,
        end: u64,
        stride: u64,
        seen: Vec<u64>,
        done: bool,
    }

    impl WorkerTask for Count {
        type Output = Vec<u64>;

        fn step(&mut self) -> bool {
            assert!(!self.done, "stepped again after it returned false");
            // Ten at a time, so the operator is activated again and again.
            for _ in 0..10 {
                if self.next >= self.end {
                    self.done = true;
                    return false;
                }
                self.seen.push(self.next);
                self.next += self.stride;
            }
            true
        }

        fn finish(self) -> Vec<u64> {
            self.seen
        }
    }

    #[test]
    fn every_worker_runs_its_task_to_the_end() {
        for workers in [1, 3] {
            let outputs = run_in_operator(&Cluster::threads(workers), |id| Count {
                next: id.index as u64,
                end: 1000,
                stride: id.peers as u64,
                seen: Vec::new(),
                done: false,
            })
            .unwrap();
            assert_eq!(outputs.len(), workers);
            let mut all: Vec<u64> = outputs.into_iter().flatten().collect();
            all.sort_unstable();
            assert_eq!(all, (0..1000).collect::<Vec<_>>());
        }
    }

    /// Two processes of two workers each, as two threads of this test connected over TCP on
    /// localhost. (timely's connection set-up sleeps a second between tries.)
    #[test]
    fn two_processes_share_the_work() {
        let ports: Vec<u16> = (0..2)
            .map(|_| {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                listener.local_addr().unwrap().port()
            })
            .collect();
        let file = hostfile(&format!("127.0.0.1:{}\n127.0.0.1:{}\n", ports[0], ports[1]));
        let members: Vec<Vec<Vec<u64>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|process| {
                    let cluster = cluster(2, process, &file);
                    s.spawn(move || {
                        run_in_operator(&cluster, |id| Count {
                            next: id.index as u64,
                            end: 1000,
                            stride: id.peers as u64,
                            seen: Vec::new(),
                            done: false,
                        })
                        .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(members.iter().all(|m| m.len() == 2));
        let mut all: Vec<u64> = members.into_iter().flatten().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }
}
