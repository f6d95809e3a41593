//! A run split across worker threads and processes, on timely dataflow (feature `timely`).
//!
//! The one module that uses `timely` (pinned to `=0.32.0`): the rest of the runtime knows nothing
//! of it. timely's configuration is built directly from the `--workers`/`--processes` options
//! ([`timely_config`]): its own argument parsing (getopts, `-w -n -p -h`) is left out, `-h` would
//! clash with clap's help.
//!
//! [`run_job`]: every worker (`--workers` per process) runs the pipeline's fused executor on its
//! share of the input (a file's byte range cut at line boundaries, a Redis consumer group's
//! member, every n-th in-memory item) and writes its part of each file output
//! (`out-00001-of-00004.jsonl`). Through a timely dataflow the workers then tell each other how
//! their share ended (the counts of every stage, the dead letters, or the error); each decides
//! the same way: commit its parts only if every worker of every process ended well and the job's
//! counts add up. A process that dies is noticed by the others at once (timely's network threads
//! fail); an error in one is noticed by the others within their next poll (20 ms), as its report
//! arrives while they run.
//!
//! The element streams do not cross workers, except before a `combine_per_key`: each worker
//! folds its own elements per window and key and ships the accumulators of the windows its
//! watermark has closed to the workers owning their keys, which emit a window once timely's
//! frontier (the job's watermark) has passed it (`crate::exchange`, and `exchange` here for timely). After the
//! decision, a second round tells every worker that every part was committed, so that a process
//! returns only once the job's outputs are all in place.
//!
//! The coordinators also carry the job-wide checkpoints of a run with `combine_per_key`: each
//! worker's durable watermark to every other, and the least of them back to its share (see
//! `checkpoint`). The workers of a process share their `run_inference` stages (`crate::local`).
//!
//! The fused segments run on threads of their own beside the timely workers, not as timely
//! operators; [`run_in_operator`] is that other shape (one operator per fused segment), measured
//! in `benches/timely_worker.rs`.

mod exchange;
mod network;
mod operator;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::WorkerConfig;

use self::exchange::{StageEnds, Transport};
use self::network::connect;
pub use self::network::timely_config;
pub use self::operator::{run_in_operator, WorkerId, WorkerTask};
use crate::checkpoint::Durable;
use crate::deadletter::DeadLetter;
use crate::error::{Error, Result};
use crate::exchange::{Exchanges, Waker};
use crate::exec::{run_share, unbalanced, Finished, Pipeline, RunConfig, Split};
use crate::graph::StageKind;
use crate::io::Share;
use crate::local::LocalWorkers;
use crate::panic;
use crate::summary::Summary;

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
    /// What its `combine_per_key` stages shipped: accumulators, bytes.
    exchanged: (u64, u64),
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
            exchanged: (0, 0),
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
                report.exchanged = (summary.exchanged.records, summary.exchanged.bytes);
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

/// What the coordinators send each other: first each share's report, then (the job having
/// decided) whether each worker committed its part of the outputs.
#[derive(serde::Serialize, serde::Deserialize)]
enum Message {
    /// How far a worker's emitted windows are durable (job-wide checkpoints, see `checkpoint`).
    Durable {
        worker: usize,
        watermark: i64,
    },
    Report(Report),
    Committed {
        worker: usize,
        process: usize,
        error: Option<String>,
    },
}

/// What a worker's coordinator (a timely worker) tells the thread running its share.
enum Update {
    /// Another worker's share failed: stop.
    Failed(Report),
    /// Every worker's report: decide.
    All(Vec<Report>),
    /// Every worker committed its part (or why one did not).
    Committed(Result<()>),
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
    // The `combine_per_key` stages: each exchanges accumulators by key between the workers.
    let combines: Vec<u32> = P::graph()
        .stages
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == StageKind::Combine)
        .map(|(id, _)| id as u32)
        .collect();
    let timely = timely_config(cluster)?;
    panic::install_hook();
    panic::clear_lost_process();
    let (builders, others) = connect(&timely.communication)?;
    let mut coordinators: Vec<Option<CoordinatorEnds>> = Vec::new();
    let mut shares = Vec::new();
    let total = cluster.workers * cluster.processes;
    for local in 0..cluster.workers {
        let (report_tx, report_rx) = mpsc::channel();
        let (commit_tx, commit_rx) = mpsc::channel();
        let (update_tx, update_rx) = mpsc::channel();
        let waker = Waker::default();
        let (share_ends, coordinator_ends) = exchange::channels(&combines, &waker);
        let durable = Arc::new(Durable::default());
        coordinators.push(Some(CoordinatorEnds {
            reports: report_rx,
            commits: commit_rx,
            updates: update_tx,
            exchange: coordinator_ends,
            durable: durable.clone(),
            waker: waker.clone(),
        }));
        let share = cluster.share(local);
        let exchanges = Exchanges::new(total, share.index, share_ends);
        let ends = ShareEnds {
            reports: report_tx,
            commits: commit_tx,
            updates: update_rx,
            waker,
        };
        shares.push((share, local, exchanges, ends, durable));
    }
    let coordinators = std::sync::Arc::new(std::sync::Mutex::new(coordinators));
    // The process's workers share its `run_inference` stages: each model is loaded once.
    let workers = Arc::new(LocalWorkers::new(cluster.workers));
    let first = cluster.process * cluster.workers;
    let guards =
        timely::execute::execute_from(builders, others, WorkerConfig::default(), move |worker| {
            panic::quiet_thread();
            let ends = coordinators.lock().unwrap_or_else(|e| e.into_inner())
                [worker.index() - first]
                .take();
            if let Some(ends) = ends {
                coordinate(worker, ends);
            }
        })
        .map_err(|e| Error::Config(format!("cannot start the timely workers: {e}")))?;
    let outcomes: Vec<Result<Summary>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|(share, local, exchanges, ends, durable)| {
                let split = Split {
                    exchanges,
                    workers: workers.clone(),
                    local,
                    durable,
                };
                scope.spawn(move || {
                    panic::quiet_thread();
                    run_worker::<P>(args, config, share, split, ends)
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

/// A worker's coordinator's ends of the channels to its share.
struct CoordinatorEnds {
    reports: mpsc::Receiver<Report>,
    commits: mpsc::Receiver<std::result::Result<(), String>>,
    updates: mpsc::Sender<Update>,
    exchange: Vec<StageEnds>,
    durable: Arc<Durable>,
    /// What the share wakes this coordinator with when it sends it something.
    waker: Waker,
}

/// A timely worker exchanging reports: sends its share's report to every worker, passes failed
/// reports of others on at once (so the share stops) and every report once all have arrived.
/// While the share runs, it also carries its `combine_per_key` stages' exchange by key.
///
/// Between rounds it parks in timely (`step_or_park`), woken by timely's messages and by its
/// share (which unparks it when it sends its report, its commit, or the last shipment of a
/// `combine_per_key`), at the latest after [`ROUND`].
fn coordinate(worker: &mut timely::worker::Worker, ends: CoordinatorEnds) {
    let CoordinatorEnds {
        reports,
        commits,
        updates,
        exchange,
        durable,
        waker,
    } = ends;
    waker.register();
    let durable = &*durable;
    let mut transport = Transport::build(worker, exchange);
    let received: Rc<RefCell<Vec<Report>>> = Rc::default();
    // How far each worker's windows are durable (job-wide checkpoints).
    let durables: Rc<RefCell<BTreeMap<usize, i64>>> = Rc::default();
    // (worker, process, why it did not commit)
    type Commits = Vec<(usize, usize, Option<String>)>;
    let committed: Rc<RefCell<Commits>> = Rc::default();
    // Epoch 0: the reports; epoch 1: the commits.
    let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
        let (input, stream) = scope.new_input::<Vec<String>>();
        let (reports, commits) = (Rc::clone(&received), Rc::clone(&committed));
        let durables = Rc::clone(&durables);
        let (probe, _) = stream
            .broadcast()
            .inspect(move |text: &String| match serde_json::from_str(text) {
                Ok(Message::Durable { worker, watermark }) => {
                    let mut durables = durables.borrow_mut();
                    let at = durables.entry(worker).or_insert(i64::MIN);
                    *at = (*at).max(watermark);
                }
                Ok(Message::Report(report)) => reports.borrow_mut().push(report),
                Ok(Message::Committed {
                    worker,
                    process,
                    error,
                }) => commits.borrow_mut().push((worker, process, error)),
                Err(_) => {}
            })
            .probe();
        (input, probe)
    });
    let poll = Some(Duration::from_millis(10));
    let mut passed = 0;
    let mut pass_failures = |received: &RefCell<Vec<Report>>, transport: &mut Transport| {
        let received = received.borrow();
        for report in &received[passed..] {
            if report.error.is_some() {
                transport.fail(&peer_failed(report).to_string());
                let _ = updates.send(Update::Failed(report.clone()));
            }
        }
        passed = received.len();
    };
    let text = |m: &Message| serde_json::to_string(m).expect("a message serializes");
    let peers = worker.peers();
    let mut told = i64::MIN;
    let own = loop {
        // This worker's durable watermark to the others when it moved; the job's (the least
        // over every worker) back to the share.
        let mine = durable.own.load(Relaxed);
        if mine > told {
            told = mine;
            input.send(text(&Message::Durable {
                worker: worker.index(),
                watermark: mine,
            }));
            // An input holds what it is sent until its buffer fills or its time moves on.
            input.flush();
        }
        {
            let durables = durables.borrow();
            let job = if durables.len() == peers {
                durables.values().copied().min().unwrap_or(i64::MIN)
            } else {
                i64::MIN
            };
            durable.job.store(job, Relaxed);
        }
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
                    exchanged: (0, 0),
                }
            }
        }
        transport.send();
        worker.step_or_park(Some(ROUND));
        transport.deliver();
        pass_failures(&received, &mut transport);
    };
    // Whatever the share did not close (it failed) no longer holds the others back.
    transport.close();
    let (me, process) = (own.worker, own.process);
    input.send(text(&Message::Report(own)));
    input.advance_to(1);
    while probe.less_than(&1) {
        worker.step_or_park(poll);
        transport.deliver();
        pass_failures(&received, &mut transport);
    }
    let _ = updates.send(Update::All(received.take()));
    // The share commits its part (or not: the job failed); every worker learns of every
    // commit, so that no process ends before the job's outputs are all in place.
    let error = loop {
        match commits.try_recv() {
            Ok(result) => break result.err(),
            Err(mpsc::TryRecvError::Empty) => worker.step_or_park(Some(ROUND)),
            Err(mpsc::TryRecvError::Disconnected) => break Some("it did not commit".into()),
        };
    };
    input.send(text(&Message::Committed {
        worker: me,
        process,
        error,
    }));
    drop(input);
    while !probe.done() {
        worker.step_or_park(poll);
    }
    let mut committed = committed.take();
    committed.sort();
    let outcome = match committed.iter().find(|c| c.2.is_some()) {
        None => Ok(()),
        Some((worker, process, error)) => Err(Error::Peer(format!(
            "worker {worker} (process {process}) did not commit its part of the outputs, so the \
             job's outputs are incomplete: {}",
            error.as_deref().unwrap_or("")
        ))),
    };
    let _ = updates.send(Update::Committed(outcome));
}

/// The longest a coordinator parks between its rounds (it is woken sooner by timely's messages
/// and its share's).
const ROUND: Duration = Duration::from_millis(2);

/// The share thread's ends of the channels to its coordinator.
struct ShareEnds {
    reports: mpsc::Sender<Report>,
    commits: mpsc::Sender<std::result::Result<(), String>>,
    updates: mpsc::Receiver<Update>,
    waker: Waker,
}

/// One worker's share: runs it, reports how it ended to every worker (through its
/// coordinator), and commits its part of the outputs if every share ended well.
fn run_worker<P: Pipeline>(
    args: &P::Args,
    config: &RunConfig,
    share: Share,
    split: Split,
    ends: ShareEnds,
) -> Result<Summary> {
    let ShareEnds {
        reports,
        commits,
        updates,
        waker,
    } = ends;
    // One metrics endpoint and one progress line per process.
    let mut own = config.clone();
    if split.local != 0 {
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
    let finished = run_share::<P>(args, &own, share, Some(split), &mut watch);
    if let Some(error) = lost_error() {
        return Err(error);
    }
    let _ = reports.send(Report::new(share, config.cluster.process, &finished));
    waker.wake();
    let mut reports = loop {
        match updates.recv_timeout(Duration::from_millis(50)) {
            Ok(Update::All(reports)) => break reports,
            Ok(Update::Failed(_) | Update::Committed(_)) | Err(mpsc::RecvTimeoutError::Timeout) => {
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
    // Every worker has ended: the figures of the model stages this process's workers share are
    // complete now.
    finished.refresh_inference();
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
    summary.exchanged.records = reports.iter().map(|r| r.exchanged.0).sum();
    summary.exchanged.bytes = reports.iter().map(|r| r.exchanged.1).sum();
    summary.workers = config.cluster.peers();
    summary.process = config.cluster.process;
    if !summary.totals().balanced() {
        return Err(unbalanced(summary));
    }
    let committed = finished.commit_outputs();
    let _ = commits.send(committed.as_ref().map_err(|e| e.to_string()).copied());
    waker.wake();
    committed?;
    // Every worker of every process has committed (or one could not) before the run ends, and
    // before any input is acknowledged: the results of this worker's input may be in another's
    // parts.
    loop {
        match updates.recv_timeout(Duration::from_millis(50)) {
            Ok(Update::Committed(outcome)) => {
                outcome?;
                return finished.acknowledge();
            }
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {
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
    }
}

fn peer_failed(report: &Report) -> Error {
    Error::Peer(format!(
        "worker {} (process {}) failed, so no worker commits its outputs: {}",
        report.worker,
        report.process,
        report.error.as_deref().unwrap_or("")
    ))
}
