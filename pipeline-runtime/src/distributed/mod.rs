//! A run split across worker threads and processes, on timely dataflow (feature `timely`).
//!
//! The one module that uses `timely` (pinned to `=0.32.0`): the rest of the runtime knows nothing
//! of it. timely's configuration is built directly from the `--workers`/`--processes` options
//! ([`timely_config`]): its own argument parsing (getopts, `-w -n -p -h`) is left out, `-h` would
//! clash with clap's help.
//!
//! [`run_job`]: every worker (`--workers` per process) is one timely worker thread, which runs
//! the pipeline's fused segments as timely operators (one per segment, stepping the segment's
//! monomorphized chain a chunk at a time, see `crate::segment` and `operator`) on its share of
//! the input (a file's byte range cut at line boundaries, a Redis consumer group's
//! member, every n-th in-memory item) and writes its part of each file output
//! (`out-00001-of-00004.jsonl`). Through a timely dataflow the workers then tell each other how
//! their share ended (the counts of every stage, the dead letters, or the error); each decides
//! the same way: commit its parts only if every worker of every process ended well and the job's
//! counts add up. A process that dies is noticed by the others at once (timely's network threads
//! fail); an error in one is noticed by the others within their next round (2 ms), as its report
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
//! A worker's segments share its thread, so none may wait for another: a full channel, a
//! barrier not yet aligned, a `combine_per_key` ahead of the job's watermark or waiting for the
//! other workers' last windows make their segment's readers pause (`Flow::Wait`) instead, and
//! a segment waiting for its channel is woken by the channel's senders (also those on a model's
//! threads: the `run_inference` dispatchers keep threads of their own, shared by the process's
//! workers). [`run_in_operator`] is the same shape around a hand-written task, measured in
//! `benches/timely_worker.rs`.

mod exchange;
mod network;
mod operator;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::WorkerConfig;

use self::exchange::{StageEnds, Transport};
use self::network::connect;
pub use self::network::timely_config;
use self::operator::Segments;
pub use self::operator::{run_in_operator, WorkerId, WorkerTask};
use crate::checkpoint::Durable;
use crate::context::RunContext;
use crate::deadletter::DeadLetter;
use crate::error::{Error, Result};
use crate::exchange::{Exchanges, Waker};
use crate::exec::{run_share, unbalanced, Driver, Finished, Pipeline, RunConfig, Split, Task};
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

/// Runs the pipeline on every worker of this process, each on its share of the input (see the
/// module's documentation), and returns the job's summary: the counts of every worker of every
/// process (the same in each process).
///
/// Each worker is one thread: a timely worker that runs the worker's segments as timely
/// operators and carries the reports, the commits, the exchange by key and the checkpoints
/// between the workers.
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
    // The process's workers share its `run_inference` stages: each model is loaded once.
    let workers = Arc::new(LocalWorkers::new(cluster.workers));
    let first = cluster.process * cluster.workers;
    let combines = &combines;
    // A worker's whole part of the job, on its timely thread.
    let job = move |worker: &mut timely::worker::Worker| -> Result<Summary> {
        let local = worker.index() - first;
        let outcome = panic::quietly(|| {
            run_worker::<P>(args, config, worker, local, workers.clone(), combines)
        });
        // Every worker has passed the last round it takes part in (the commits, or the reports of
        // a failed job). What timely may still hold waits for what will not come: a worker that
        // failed before it built its segments has no operators to match this one's, and a lost
        // process says nothing more.
        for dataflow in worker.installed_dataflows() {
            worker.drop_dataflow(dataflow);
        }
        outcome.unwrap_or_else(|panic| Err(lost_error().unwrap_or(Error::Internal(panic))))
    };
    type Job<'a> = Box<dyn Fn(&mut timely::worker::Worker) -> Result<Summary> + Send + Sync + 'a>;
    let job: Job<'_> = Box::new(job);
    // SAFETY: timely's worker threads must be `'static`, and the job borrows the pipeline's
    // arguments and configuration. A thread calls the job only after `gate` opened, which it
    // does once every thread has started; and `guards` joins every thread (in `join` below, or
    // in its `Drop` if this function unwinds) before the borrows end. If the threads cannot all
    // start, the gate tells them to return without calling it.
    let job: Job<'static> = unsafe { std::mem::transmute::<Job<'_>, Job<'static>>(job) };
    let gate: Arc<(std::sync::Mutex<Option<bool>>, std::sync::Condvar)> = Arc::default();
    let open = |go: bool| {
        *gate.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(go);
        gate.1.notify_all();
    };
    let started = {
        let gate = gate.clone();
        timely::execute::execute_from(builders, others, WorkerConfig::default(), move |worker| {
            panic::quiet_thread();
            let mut go = gate.0.lock().unwrap_or_else(|e| e.into_inner());
            while go.is_none() {
                go = gate.1.wait(go).unwrap_or_else(|e| e.into_inner());
            }
            if *go != Some(true) {
                return None;
            }
            drop(go);
            Some(job(worker))
        })
    };
    let guards = match started {
        Ok(guards) => guards,
        Err(e) => {
            open(false);
            return Err(Error::Config(format!(
                "cannot start the timely workers: {e}"
            )));
        }
    };
    open(true);
    // After a lost process, joining timely's network threads panics again (they panicked):
    // quietly, the error is the lost process's.
    let outcomes: Vec<Result<Summary>> = panic::quietly(|| guards.join())
        .unwrap_or_default()
        .into_iter()
        .map(|joined| match joined {
            Ok(Some(outcome)) => outcome,
            Ok(None) => Err(Error::Internal("a worker did not run".into())),
            Err(panic) => Err(lost_error().unwrap_or(Error::Internal(panic))),
        })
        .collect();
    if let Some(error) = lost_error() {
        return Err(error);
    }
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

/// (worker, process, why it did not commit)
type Commits = Vec<(usize, usize, Option<String>)>;

/// A worker's timely side: the dataflow through which it tells every worker its durable
/// watermark, its report and its commit, and the exchange by key of its `combine_per_key`
/// stages. It also drives the worker's segments ([`Driver`]): each is a timely operator.
///
/// Between rounds it parks in timely (`step_or_park`), woken by timely's messages, by a segment
/// that has more to do, by a channel's sender on another thread (a model's results), at the
/// latest after [`ROUND`].
struct Coordinator<'w> {
    worker: &'w mut timely::worker::Worker,
    input: Option<timely::dataflow::InputHandle<u64, CapacityContainerBuilder<Vec<String>>>>,
    probe: timely::dataflow::ProbeHandle<u64>,
    transport: Transport,
    received: Rc<RefCell<Vec<Report>>>,
    /// How far each worker's windows are durable (job-wide checkpoints).
    durables: Rc<RefCell<BTreeMap<usize, i64>>>,
    committed: Rc<RefCell<Commits>>,
    /// This worker's and the job's durable watermarks, shared with its run.
    durable: Arc<Durable>,
    /// The durable watermark last told to the others.
    told: i64,
    /// The reports already looked at for failures.
    passed: usize,
}

impl<'w> Coordinator<'w> {
    fn new(
        worker: &'w mut timely::worker::Worker,
        exchange: Vec<StageEnds>,
        durable: Arc<Durable>,
    ) -> Self {
        let transport = Transport::build(worker, exchange);
        let received: Rc<RefCell<Vec<Report>>> = Rc::default();
        let durables: Rc<RefCell<BTreeMap<usize, i64>>> = Rc::default();
        let committed: Rc<RefCell<Commits>> = Rc::default();
        // Epoch 0: the reports; epoch 1: the commits.
        let (input, probe) = worker.dataflow::<u64, _, _>(|scope| {
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
        Self {
            worker,
            input: Some(input),
            probe,
            transport,
            received,
            durables,
            committed,
            durable,
            told: i64::MIN,
            passed: 0,
        }
    }

    fn send(&mut self, message: &Message) {
        if let Some(input) = &mut self.input {
            input.send(serde_json::to_string(message).expect("a message serializes"));
            // An input holds what it is sent until its buffer fills or its time moves on.
            input.flush();
        }
    }

    /// One round while the worker's segments run: this worker's durable watermark to the others
    /// when it moved and the job's back to the run, the exchange's shipments out, a step of
    /// timely (which runs the segments that have work), what arrived in. Returns the first
    /// failed report of another worker not seen before.
    fn round(&mut self) -> Option<Report> {
        let mine = self.durable.own.load(Relaxed);
        if mine > self.told {
            self.told = mine;
            let worker = self.worker.index();
            self.send(&Message::Durable {
                worker,
                watermark: mine,
            });
        }
        {
            let durables = self.durables.borrow();
            let job = if durables.len() == self.worker.peers() {
                durables.values().copied().min().unwrap_or(i64::MIN)
            } else {
                i64::MIN
            };
            self.durable.job.store(job, Relaxed);
        }
        self.transport.send();
        self.worker.step_or_park(Some(ROUND));
        self.transport.deliver();
        self.failed()
    }

    /// The first failed report not looked at before; the exchange learns of it (so that a
    /// `combine_per_key` waiting for the failed worker stops waiting).
    fn failed(&mut self) -> Option<Report> {
        let received = self.received.borrow();
        let failed = received[self.passed..]
            .iter()
            .find(|r| r.error.is_some())
            .cloned();
        self.passed = received.len();
        if let Some(report) = &failed {
            self.transport.fail(&peer_failed(report).to_string());
        }
        failed
    }

    /// Sends this worker's report to every worker and waits for every worker's.
    fn reports(&mut self, own: Report) -> Result<Vec<Report>> {
        // Whatever the share did not close (it failed) no longer holds the others back.
        self.transport.close();
        self.send(&Message::Report(own));
        if let Some(input) = &mut self.input {
            input.advance_to(1);
        }
        while self.probe.less_than(&1) {
            self.worker.step_or_park(Some(POLL));
            self.transport.deliver();
            self.failed();
            if let Some(error) = lost_error() {
                return Err(error);
            }
        }
        Ok(self.received.take())
    }

    /// Tells every worker whether this one committed its part of the outputs (`error`: why
    /// not), and waits until every worker has said so: no process ends before the job's outputs
    /// are all in place.
    fn commits(&mut self, error: Option<String>, process: usize) -> Result<()> {
        let worker = self.worker.index();
        self.send(&Message::Committed {
            worker,
            process,
            error,
        });
        self.input = None;
        while !self.probe.done() {
            self.worker.step_or_park(Some(POLL));
            if let Some(error) = lost_error() {
                return Err(error);
            }
        }
        let mut committed = self.committed.take();
        committed.sort();
        match committed.iter().find(|c| c.2.is_some()) {
            None => Ok(()),
            Some((worker, process, error)) => Err(Error::Peer(format!(
                "worker {worker} (process {process}) did not commit its part of the outputs, so \
                 the job's outputs are incomplete: {}",
                error.as_deref().unwrap_or("")
            ))),
        }
    }
}

impl Driver for Coordinator<'_> {
    fn drive<'a>(&mut self, tasks: Vec<Box<dyn Task + 'a>>, run: &RunContext) {
        let mut segments = Segments::new(tasks);
        segments.operators(self.worker);
        loop {
            // A failed segment stops the others (the first failure is the run's).
            for error in segments.failures() {
                run.fail(error);
            }
            if segments.done() {
                break;
            }
            if let Some(report) = self.round() {
                run.fail(peer_failed(&report));
            }
            if let Some(error) = lost_error() {
                run.fail(error);
            }
            run.poll_checkpoints();
        }
    }
}

/// The longest a coordinator parks between its rounds (it is woken sooner by timely's messages,
/// by its segments and by their channels).
const ROUND: Duration = Duration::from_millis(2);

/// How long a coordinator parks while it waits for the reports and commits of the others.
const POLL: Duration = Duration::from_millis(10);

/// One worker's share: runs its segments (as timely operators on this thread), reports how it
/// ended to every worker, and commits its part of the outputs if every share ended well.
fn run_worker<P: Pipeline>(
    args: &P::Args,
    config: &RunConfig,
    worker: &mut timely::worker::Worker,
    local: usize,
    workers: Arc<LocalWorkers>,
    combines: &[u32],
) -> Result<Summary> {
    let cluster = &config.cluster;
    let share = cluster.share(local);
    let waker = Waker::default();
    waker.register();
    let (share_ends, coordinator_ends) = exchange::channels(combines, &waker);
    let durable = Arc::new(Durable::default());
    let split = Split {
        exchanges: Exchanges::new(cluster.peers(), share.index, share_ends),
        workers,
        local,
        durable: durable.clone(),
    };
    let mut coordinator = Coordinator::new(worker, coordinator_ends, durable);
    // One metrics endpoint and one progress line per process.
    let mut own = config.clone();
    if local != 0 {
        own.metrics_addr = None;
        own.progress = false;
    }
    let finished = run_share::<P>(args, &own, share, Some((split, &mut coordinator)));
    if let Some(error) = lost_error() {
        return Err(error);
    }
    let mut reports = coordinator.reports(Report::new(share, cluster.process, &finished))?;
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
    let outcome = coordinator.commits(
        committed.as_ref().err().map(|e| e.to_string()),
        cluster.process,
    );
    committed?;
    // Every worker of every process has committed (or one could not) before the run ends, and
    // before any input is acknowledged: the results of this worker's input may be in another's
    // parts.
    outcome?;
    finished.acknowledge()
}

fn peer_failed(report: &Report) -> Error {
    Error::Peer(format!(
        "worker {} (process {}) failed, so no worker commits its outputs: {}",
        report.worker,
        report.process,
        report.error.as_deref().unwrap_or("")
    ))
}
