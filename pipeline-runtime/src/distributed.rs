//! A run split across worker threads and processes, on timely dataflow (feature `timely`).
//!
//! The one module that uses `timely` (pinned to `=0.32.0`): the rest of the runtime knows nothing
//! of it. timely's configuration is built directly from [`Cluster`] ([`timely_config`]): its own
//! argument parsing (getopts, `-w -n -p -h`) is left out, `-h` would clash with clap's help.
//!
//! [`run_job`]: every worker (a thread of timely's, `--workers` per process) runs the pipeline's
//! fused executor on its share of the input (a file's byte range cut at line boundaries, a
//! consumer group's member, every n-th in-memory item) and writes its part of each file output
//! (`out-00001-of-00004.jsonl`). Through a timely dataflow the workers then tell each other how
//! their share ended (the counts of every stage, the dead letters, or the error); each decides
//! the same way: commit its parts only if every worker of every process ended well and the job's
//! counts add up. A process that dies is noticed by the others at once (timely's network threads
//! fail); an error in one is noticed by the others within their next poll (20 ms), as its report
//! arrives while they run.
//!
//! Not lowered yet (the element streams do not cross workers): `window` + `combine_per_key`
//! would need an exchange by key, so a split run of a pipeline that has one is refused at start.
//! [`run_in_operator`] is the shape the lowering will take (one operator per fused segment),
//! measured in `benches/timely_worker.rs`.

use std::any::Any;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
use timely::communication::Hooks;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::{CommunicationConfig, WorkerConfig};

use crate::cluster::Cluster;
use crate::deadletter::DeadLetter;
use crate::error::{Error, Result};
use crate::exec::{run_share, unbalanced, Finished, Pipeline, RunConfig};
use crate::graph::StageKind;
use crate::io::Share;
use crate::panic;
use crate::summary::Summary;

/// timely's configuration for `cluster`, built directly (no argument parsing): one thread, one
/// process of `workers` threads, or a cluster of `processes` connected over TCP.
pub fn timely_config(cluster: &Cluster) -> Result<timely::Config> {
    cluster.check()?;
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

/// How a worker's share of the run ended, sent to every worker.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Report {
    worker: usize,
    process: usize,
    /// Why the share failed, if it did.
    error: Option<String>,
    /// Per stage: input, output, filtered, dead, created.
    stages: Vec<(u64, u64, u64, u64, i64)>,
    dead_letters: Vec<DeadLetter>,
    dead_letter_file: Option<std::path::PathBuf>,
    elapsed: std::time::Duration,
}

impl Report {
    fn new(share: Share, process: usize, finished: &Result<Finished>) -> Self {
        let mut report = Report {
            worker: share.index,
            process,
            error: None,
            stages: Vec::new(),
            dead_letters: Vec::new(),
            dead_letter_file: None,
            elapsed: Default::default(),
        };
        match finished {
            Ok(finished) => {
                let summary = &finished.summary;
                report.stages = summary
                    .stages
                    .iter()
                    .map(|s| (s.input, s.output, s.filtered, s.dead, s.created))
                    .collect();
                report.dead_letters = summary.dead_letters.clone();
                report.dead_letter_file = summary.dead_letter_file.clone();
                report.elapsed = summary.elapsed;
            }
            Err(error) => report.error = Some(error.to_string()),
        }
        report
    }
}

/// The error of a process whose connection broke.
fn lost_error() -> Option<Error> {
    panic::lost_process().map(|(process, message)| {
        Error::Peer(format!(
            "process {process} of the run stopped (its connection broke: {message}), so this \
             process stopped too and committed nothing; rerun the job"
        ))
    })
}

/// What a worker's coordinator (a timely worker) tells the thread running its share.
enum Update {
    /// Another worker's share failed: stop.
    Failed(Report),
    /// Every worker's report: decide.
    All(Vec<Report>),
}

/// Runs the pipeline on every worker of this process, each on its share of the input (see the
/// module's documentation), and returns the job's summary: the counts of every worker of every
/// process (the same in each process).
///
/// Each worker is two threads: a timely worker that exchanges the reports (timely's threads
/// must be `'static`, and a pipeline's arguments are borrowed), and the thread running the
/// share's executor, here in a scope.
pub fn run_job<P: Pipeline>(args: &P::Args, config: &RunConfig) -> Result<Summary> {
    let cluster = &config.cluster;
    if let Some(stage) = P::graph()
        .stages
        .iter()
        .find(|s| matches!(s.kind, StageKind::Window | StageKind::Combine))
    {
        return Err(Error::Config(format!(
            "`{}` cannot run on several workers yet: windows and `combine_per_key` need an \
             exchange by key between workers, which is not built; run this pipeline with \
             --workers 1 --processes 1",
            stage.label
        )));
    }
    let timely = timely_config(cluster)?;
    panic::install_hook();
    panic::clear_lost_process();
    let (builders, others) = connect(&timely.communication)?;
    type Ends = (mpsc::Receiver<Report>, mpsc::Sender<Update>);
    let mut coordinators: Vec<Option<Ends>> = Vec::new();
    let mut shares = Vec::new();
    for local in 0..cluster.workers {
        let (report_tx, report_rx) = mpsc::channel();
        let (update_tx, update_rx) = mpsc::channel();
        coordinators.push(Some((report_rx, update_tx)));
        shares.push((cluster.share(local), local, report_tx, update_rx));
    }
    let coordinators = std::sync::Arc::new(std::sync::Mutex::new(coordinators));
    let first = cluster.process * cluster.workers;
    let guards =
        timely::execute::execute_from(builders, others, WorkerConfig::default(), move |worker| {
            panic::quiet_thread();
            let ends = coordinators.lock().unwrap_or_else(|e| e.into_inner())
                [worker.index() - first]
                .take();
            if let Some((reports, updates)) = ends {
                coordinate(worker, reports, updates);
            }
        })
        .map_err(|e| Error::Config(format!("cannot start the timely workers: {e}")))?;
    let outcomes: Vec<Result<Summary>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|(share, local, reports, updates)| {
                scope.spawn(move || {
                    panic::quiet_thread();
                    run_worker::<P>(args, config, share, local, reports, updates)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|p| Err(Error::Internal(panic::describe(p))))
            })
            .collect()
    });
    // After a lost process, joining timely's network threads panics again (they panicked):
    // quietly, the error is the lost process's.
    let _ = panic::quietly(|| guards.join());
    let mut first = None;
    for outcome in outcomes {
        match outcome {
            Err(error) => return Err(error),
            Ok(summary) => {
                first.get_or_insert(summary);
            }
        }
    }
    first.ok_or_else(|| Error::Internal("no worker ran".into()))
}

/// A timely worker exchanging reports: sends its share's report to every worker, passes failed
/// reports of others on at once (so the share stops) and every report once all have arrived.
fn coordinate(
    worker: &mut timely::worker::Worker,
    reports: mpsc::Receiver<Report>,
    updates: mpsc::Sender<Update>,
) {
    let received: Rc<RefCell<Vec<Report>>> = Rc::default();
    let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
        let (input, stream) = scope.new_input::<Vec<String>>();
        let into = Rc::clone(&received);
        let (probe, _) = stream
            .broadcast()
            .inspect(move |text: &String| {
                if let Ok(report) = serde_json::from_str(text) {
                    into.borrow_mut().push(report)
                }
            })
            .probe();
        (input, probe)
    });
    let poll = Some(std::time::Duration::from_millis(10));
    let mut passed = 0;
    let mut pass_failures = |received: &RefCell<Vec<Report>>| {
        let received = received.borrow();
        for report in &received[passed..] {
            if report.error.is_some() {
                let _ = updates.send(Update::Failed(report.clone()));
            }
        }
        passed = received.len();
    };
    let own = loop {
        match reports.try_recv() {
            Ok(report) => break report,
            Err(mpsc::TryRecvError::Empty) => {}
            // The share's thread ended without a report (it panicked): the others must not wait.
            Err(mpsc::TryRecvError::Disconnected) => {
                break Report {
                    worker: worker.index(),
                    process: usize::MAX,
                    error: Some("the worker's thread ended without a report".into()),
                    stages: Vec::new(),
                    dead_letters: Vec::new(),
                    dead_letter_file: None,
                    elapsed: Default::default(),
                }
            }
        }
        worker.step_or_park(poll);
        pass_failures(&received);
    };
    input.send(serde_json::to_string(&own).expect("a report serializes"));
    drop(input);
    while !probe.done() {
        worker.step_or_park(poll);
        pass_failures(&received);
    }
    let _ = updates.send(Update::All(received.take()));
}

/// How long a process waits for the others to start and connect.
const CONNECT_FOR: Duration = Duration::from_secs(60);

/// timely's communication for this process. For several processes the connections are made
/// here rather than by timely, which retries for ever and prints each try on stdout (where a
/// pipeline may be writing its output): each process connects to those before it in the
/// hostfile and accepts those after it, for at most [`CONNECT_FOR`], then hands the sockets to
/// timely.
fn connect(config: &CommunicationConfig) -> Result<(Vec<AllocatorBuilder>, Box<dyn Any + Send>)> {
    let CommunicationConfig::Cluster {
        threads,
        process,
        addresses,
        ..
    } = config
    else {
        return config
            .clone()
            .try_build()
            .map_err(|e| Error::Config(format!("cannot start the timely workers: {e}")));
    };
    let (threads, process) = (*threads, *process);
    let fail = |what: String, e: std::io::Error| {
        Error::Config(format!(
            "process {process} cannot connect to the other processes of the run: {what}: {e}"
        ))
    };
    let deadline = Instant::now() + CONNECT_FOR;
    let mut sockets: Vec<Option<TcpStream>> = Vec::with_capacity(addresses.len());
    // The processes before this one listen: connect to each, saying who this is.
    for (index, address) in addresses.iter().enumerate().take(process) {
        let mut stream = loop {
            match TcpStream::connect(address) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() >= deadline => {
                    return Err(fail(
                        format!(
                            "process {index} at {address} did not answer within {}s",
                            CONNECT_FOR.as_secs()
                        ),
                        e,
                    ))
                }
                Err(e) => {
                    tracing::debug!("process {index} at {address} not there yet: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        let said = stream
            .set_nodelay(true)
            .and_then(|()| stream.write_all(&(process as u64).to_be_bytes()));
        said.map_err(|e| fail(format!("greeting process {index} at {address}"), e))?;
        sockets.push(Some(stream));
    }
    sockets.push(None);
    // The processes after this one connect here.
    let mut later: Vec<Option<TcpStream>> = (process + 1..addresses.len()).map(|_| None).collect();
    if !later.is_empty() {
        let address = &addresses[process];
        let listener =
            TcpListener::bind(address).map_err(|e| fail(format!("listening on {address}"), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| fail(format!("listening on {address}"), e))?;
        while later.iter().any(Option::is_none) {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let mut index = [0; 8];
                    let heard = stream
                        .set_nonblocking(false)
                        .and_then(|()| stream.set_nodelay(true))
                        .and_then(|()| stream.set_read_timeout(Some(Duration::from_secs(10))))
                        .and_then(|()| stream.read_exact(&mut index))
                        .and_then(|()| stream.set_read_timeout(None));
                    let index = u64::from_be_bytes(index) as usize;
                    match heard {
                        Ok(()) if index > process && index < addresses.len() => {
                            later[index - process - 1] = Some(stream)
                        }
                        // Not one of ours (a port scan, a stray client): ignore it.
                        _ => tracing::warn!(
                            "ignored a connection on {address} that is not a process of this run"
                        ),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        let missing: Vec<String> = later
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.is_none())
                            .map(|(i, _)| (process + 1 + i).to_string())
                            .collect();
                        return Err(Error::Config(format!(
                            "process {process}: process{} {} did not connect within {}s (are they \
                             started, with the same --processes and --hostfile?)",
                            if missing.len() == 1 { "" } else { "es" },
                            missing.join(", "),
                            CONNECT_FOR.as_secs()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(fail(format!("accepting on {address}"), e)),
            }
        }
    }
    sockets.extend(later);
    let hooks = Hooks::default();
    let process_allocators =
        ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
    let (builders, guard) =
        initialize_networking_from_sockets(process_allocators, sockets, process, threads, hooks)
            .map_err(|e| fail("starting timely's network threads".into(), e))?;
    Ok((
        builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
        Box::new(guard),
    ))
}

/// One worker's share: runs it, reports how it ended to every worker (through its
/// coordinator), and commits its part of the outputs if every share ended well.
fn run_worker<P: Pipeline>(
    args: &P::Args,
    config: &RunConfig,
    share: Share,
    local: usize,
    reports: mpsc::Sender<Report>,
    updates: mpsc::Receiver<Update>,
) -> Result<Summary> {
    // One metrics endpoint and one progress line per process.
    let mut own = config.clone();
    if local != 0 {
        own.metrics_addr = None;
        own.progress = false;
    }
    // While the share runs: a lost process, or another worker's failed report, stops it.
    let mut watch = || -> Option<Error> {
        if let Some(error) = lost_error() {
            return Some(error);
        }
        match updates.try_recv() {
            Ok(Update::Failed(report)) => Some(peer_failed(&report)),
            _ => None,
        }
    };
    let finished = run_share::<P>(args, &own, share, &mut watch);
    if let Some(error) = lost_error() {
        return Err(error);
    }
    let _ = reports.send(Report::new(share, config.cluster.process, &finished));
    let mut reports = loop {
        match updates.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(Update::All(reports)) => break reports,
            Ok(Update::Failed(_)) | Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(error) = lost_error() {
                    return Err(error);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(lost_error().unwrap_or_else(|| {
                    Error::Internal("the worker's timely coordinator stopped".into())
                }))
            }
        }
    };
    let mut finished = finished?;
    reports.sort_by_key(|r| r.worker);
    if let Some(failed) = reports.iter().find(|r| r.error.is_some()) {
        return Err(peer_failed(failed));
    }
    // The job's summary: every worker's counts.
    let summary = &mut finished.summary;
    for stage in &mut summary.stages {
        let id = stage.id as usize;
        let sum = |f: fn(&(u64, u64, u64, u64, i64)) -> u64| {
            reports.iter().map(|r| f(&r.stages[id])).sum::<u64>()
        };
        stage.input = sum(|s| s.0);
        stage.output = sum(|s| s.1);
        stage.filtered = sum(|s| s.2);
        stage.dead = sum(|s| s.3);
        stage.created = reports.iter().map(|r| r.stages[id].4).sum();
    }
    summary.dead_letters = reports
        .iter()
        .flat_map(|r| r.dead_letters.clone())
        .collect();
    // Each worker writes its own dead letters: name them all when several did.
    let files: Vec<_> = reports
        .iter()
        .filter_map(|r| r.dead_letter_file.clone())
        .collect();
    summary.dead_letter_file = match files.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        several => {
            let names: Vec<String> = several
                .iter()
                .map(|f| {
                    f.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            Some(several[0].with_file_name(names.join(", ")))
        }
    };
    summary.elapsed = reports.iter().map(|r| r.elapsed).max().unwrap_or_default();
    if !summary.totals().balanced() {
        return Err(unbalanced(summary));
    }
    finished.commit()
}

fn peer_failed(report: &Report) -> Error {
    Error::Peer(format!(
        "worker {} (process {}) failed, so no worker commits its outputs: {}",
        report.worker,
        report.process,
        report.error.as_deref().unwrap_or("")
    ))
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
