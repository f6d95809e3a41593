//! The run context: what every segment of one run shares. Counters per stage, the dead-letter
//! output, the first failure (which stops the sources), the outputs waiting to be committed, the
//! model and queue gauges, and the request to stop.
//!
//! It is the bottom of the executing layers: stages receive it (`run: &RunContext`) to count and
//! dead-letter, the executor owns it, the summary and the metrics endpoint read it. It knows
//! nothing of stages, channels or models beyond their figures.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::checkpoint::{CheckpointPolicy, Checkpoints};
use crate::deadletter::{DeadLetter, DeadLetterOut, DeadLetterTarget};
use crate::graph::{Graph, StageKind};
use crate::io::Commit;
use crate::metrics::{render_prometheus, InferenceMetrics, MetricsCell};
use crate::queue::QueueGauge;
use crate::Error;

pub use crate::io::Pos;

/// A request to stop a run gracefully: sources stop reading at their next chunk, everything
/// already read is processed, sinks finish and commit, and the summary is made. It remembers
/// the signal number that asked for it, if any (the exit code is 128 + that number).
#[derive(Clone, Debug)]
pub struct StopSignal(std::sync::Arc<std::sync::atomic::AtomicI32>);

impl StopSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop; `signal` is the signal number that asked (0 for none). The first
    /// request wins.
    pub fn stop(&self, signal: i32) {
        let _ = self
            .0
            .compare_exchange(NOT_STOPPED, signal, Relaxed, Relaxed);
    }

    /// The signal number that asked the run to stop, if it was asked (0 when no signal did).
    pub fn requested(&self) -> Option<i32> {
        match self.0.load(Relaxed) {
            NOT_STOPPED => None,
            signal => Some(signal),
        }
    }
}

const NOT_STOPPED: i32 = -1;

impl Default for StopSignal {
    fn default() -> Self {
        Self(std::sync::Arc::new(std::sync::atomic::AtomicI32::new(
            NOT_STOPPED,
        )))
    }
}

/// Per-stage counters, published by each stage at chunk boundaries.
#[derive(Debug, Default)]
pub(crate) struct StageStats {
    pub input: AtomicU64,
    pub filtered: AtomicU64,
    pub dead: AtomicU64,
    /// Outputs of a `flat_map`.
    pub produced: AtomicU64,
    /// Extra copies made because the stage's output is consumed by several chains.
    pub copies: AtomicU64,
    /// Elements sent to each output port (counted by partitions only).
    pub ports: Box<[AtomicU64]>,
}

#[derive(Debug)]
pub(crate) struct Stats(pub Box<[StageStats]>);

impl Stats {
    pub fn add_input(&self, id: u32, n: u64) {
        self.0[id as usize].input.fetch_add(n, Relaxed);
    }
    pub fn add_filtered(&self, id: u32, n: u64) {
        self.0[id as usize].filtered.fetch_add(n, Relaxed);
    }
    pub fn add_produced(&self, id: u32, n: u64) {
        self.0[id as usize].produced.fetch_add(n, Relaxed);
    }
    pub fn add_copies(&self, id: u32, n: u64) {
        self.0[id as usize].copies.fetch_add(n, Relaxed);
    }
    pub fn add_port(&self, id: u32, port: usize, n: u64) {
        if let Some(count) = self.0[id as usize].ports.get(port) {
            count.fetch_add(n, Relaxed);
        }
    }
}

/// The state of one run, shared by all its segments: counters, dead letters, the first failure,
/// the outputs waiting to be committed, and the gauges of models and queues.
pub struct RunContext {
    pub(crate) graph: &'static Graph,
    pub(crate) stats: Stats,
    /// What each source stage reads (`JSON lines file data/requests.jsonl`), for dead letters.
    pub(crate) sources: Box<[std::sync::OnceLock<String>]>,
    /// Per source stage reading a later worker's part of a split file: the lines before it (its
    /// positions count from the part's start, see [`RunContext::position`]).
    pub(crate) lines_before: Box<[std::sync::OnceLock<Arc<crate::io::LinesBefore>>]>,
    pub(crate) dead: Mutex<DeadLetterOut>,
    pub(crate) fail_fast: bool,
    /// In a run split across workers: this share's worker and process, for its dead letters.
    pub(crate) split: Option<(usize, usize)>,
    /// In a split run: the ends of the exchange by key of each `combine_per_key`.
    pub(crate) exchange: Option<crate::exchange::Exchanges>,
    pub(crate) abort: AtomicBool,
    pub(crate) stop: StopSignal,
    pub(crate) logged_dead: AtomicU64,
    pub(crate) failure: Mutex<Option<Error>>,
    pub(crate) commits: Mutex<Vec<Box<dyn Commit>>>,
    /// Epochs and the sources' acknowledgements (see `checkpoint`).
    pub(crate) checkpoints: Checkpoints,
    pub(crate) inference: Mutex<Vec<MetricsCell>>,
    pub(crate) queues: Mutex<Vec<Arc<QueueGauge>>>,
}

impl RunContext {
    pub(crate) fn new(
        graph: &'static Graph,
        dead_letters: &DeadLetterTarget,
        fail_fast: bool,
        stop: StopSignal,
        checkpoints: CheckpointPolicy,
    ) -> Self {
        let terminals = graph
            .stages
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.kind, StageKind::Sink | StageKind::Drop))
            .map(|(id, _)| id as u32);
        Self {
            graph,
            stats: Stats(
                (0..graph.stages.len())
                    .map(|id| {
                        let ports = graph
                            .edges
                            .iter()
                            .filter(|e| e.from as usize == id)
                            .map(|e| e.port + 1)
                            .max();
                        StageStats {
                            ports: (0..ports.unwrap_or(1)).map(|_| AtomicU64::new(0)).collect(),
                            ..StageStats::default()
                        }
                    })
                    .collect(),
            ),
            sources: graph
                .stages
                .iter()
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            lines_before: graph
                .stages
                .iter()
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            dead: Mutex::new(DeadLetterOut::new(dead_letters)),
            fail_fast,
            split: None,
            exchange: None,
            abort: AtomicBool::new(false),
            stop,
            logged_dead: AtomicU64::new(0),
            failure: Mutex::new(None),
            commits: Mutex::new(Vec::new()),
            checkpoints: Checkpoints::new(checkpoints, terminals),
            inference: Mutex::new(Vec::new()),
            queues: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn add_queue(&self, gauge: Arc<QueueGauge>) {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(gauge);
    }

    /// The bounded queues of this run, in the order they were made.
    pub(crate) fn queues(&self) -> Vec<Arc<QueueGauge>> {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `pos` as the whole input's: a position a source flagged relative to its part of a split
    /// file (`io::RELATIVE`) gets the lines before the part added, counted on the first call
    /// (an error counting them fails the run, and the part's own line number is kept).
    #[inline]
    pub fn position(&self, pos: Pos) -> Pos {
        // The flag first: a position without it is the whole input's already (and this is on
        // the path of every element written to a sink that uses positions).
        if pos.index & crate::io::RELATIVE == 0 {
            return pos;
        }
        // Only a source that registered the lines before its part flags positions (a stream's
        // own positions may use every bit: a Kafka partition over 32767).
        let Some(before) = self
            .lines_before
            .get(pos.source as usize)
            .and_then(|b| b.get())
        else {
            return pos;
        };
        let index = pos.index & !crate::io::RELATIVE;
        match before.lines() {
            Ok(lines) => Pos {
                index: index + lines,
                ..pos
            },
            Err(error) => {
                self.fail(Error::Config(error));
                Pos { index, ..pos }
            }
        }
    }

    /// Records an element that cannot go on.
    #[cold]
    pub fn dead_letter(&self, stage: u32, pos: Pos, error: String, input: Option<String>) {
        let pos = self.position(pos);
        self.stats.0[stage as usize].dead.fetch_add(1, Relaxed);
        let letter = DeadLetter {
            stage: self.graph.stages[stage as usize].label.to_owned(),
            stage_id: stage,
            source: match self.sources[pos.source as usize].get() {
                Some(described) => described.clone(),
                None => self.graph.stages[pos.source as usize].label.to_owned(),
            },
            position: pos.index,
            error,
            input,
            worker: self.split.map(|(worker, _)| worker),
            process: self.split.map(|(_, process)| process),
        };
        if self.fail_fast {
            self.fail(Error::FailFast(Box::new(letter.clone())));
        }
        // The first few are logged as they happen; all of them are in the dead-letter output.
        const LOGGED: u64 = 3;
        let seen = self.logged_dead.fetch_add(1, Relaxed);
        if seen < LOGGED {
            tracing::warn!("dead letter: {letter}");
        } else if seen == LOGGED {
            tracing::warn!("more dead letters: see the dead-letter output and the summary");
        }
        let written = self
            .dead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(letter);
        if let Err(error) = written {
            self.fail(error);
        }
    }

    /// Stops the run with `error` (the first failure wins); sources stop reading.
    pub(crate) fn fail(&self, error: Error) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if failure.is_none() {
            *failure = Some(error);
        }
        self.abort.store(true, Relaxed);
    }

    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Relaxed)
    }

    /// Whether sources should stop reading: the run failed or was asked to stop.
    pub(crate) fn stop_reading(&self) -> bool {
        self.aborted() || self.stop.requested().is_some()
    }

    /// The figures of every `run_inference` stage so far, in stage order.
    pub(crate) fn inference_metrics(&self) -> Vec<InferenceMetrics> {
        let cells = self.inference.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = cells
            .iter()
            .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        all.sort_by_key(|m| m.stage);
        all
    }

    /// The Prometheus text of the run so far.
    pub(crate) fn prometheus(&self) -> String {
        prometheus_of(&[self])
    }

    pub(crate) fn add_commit(&self, commit: Option<Box<dyn Commit>>) {
        if let Some(c) = commit {
            self.commits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(c);
        }
    }

    /// A sink or drop has received barrier `epoch` (`durable`: what it wrote before it is
    /// durable); acknowledges the sources' input of the epochs that are complete now.
    pub(crate) fn checkpoint_reached(&self, terminal: u32, epoch: u64, durable: bool) {
        let due = self.checkpoints.reached(terminal, epoch, durable);
        self.publish_durable();
        self.acknowledge(due);
    }

    /// A sink or drop has finished: it will receive no more barriers.
    pub(crate) fn terminal_finished(&self, terminal: u32) {
        let due = self.checkpoints.finished(terminal);
        self.publish_durable();
        self.acknowledge(due);
    }

    /// Job-wide epochs: tells the other workers how far this worker's emitted windows are
    /// durable, once its dead letters so far are too (they may hold other workers' input that
    /// failed here). A failing run publishes nothing more.
    fn publish_durable(&self) {
        let Some(own) = self.checkpoints.take_own() else {
            return;
        };
        if self.aborted() {
            return;
        }
        let flushed = self.dead.lock().unwrap_or_else(|e| e.into_inner()).flush();
        match flushed {
            Ok(()) => self.checkpoints.publish_own(own),
            Err(error) => self.fail(error),
        }
    }

    /// Job-wide epochs (a split run with `combine_per_key`): runs the acknowledgements that the
    /// job's durable watermark has released since the last call (see `checkpoint`).
    #[cfg(feature = "timely")]
    pub(crate) fn poll_checkpoints(&self) {
        let due = self.checkpoints.take_gated();
        self.acknowledge(due);
    }

    /// Runs the acknowledgements of complete epochs, after making the dead letters of those
    /// epochs durable. A failing run acknowledges nothing more.
    fn acknowledge(&self, due: Vec<Box<dyn Commit>>) {
        if due.is_empty() || self.aborted() {
            return;
        }
        let flushed = self.dead.lock().unwrap_or_else(|e| e.into_inner()).flush();
        if let Err(error) = flushed {
            return self.fail(error);
        }
        for ack in due {
            if let Err(error) = ack.commit() {
                return self.fail(error);
            }
        }
    }

    /// (records read by sources, elements that reached sinks) so far, for the progress line.
    pub(crate) fn progress(&self) -> (u64, u64) {
        let mut read = 0;
        let mut written = 0;
        for (info, stats) in self.graph.stages.iter().zip(self.stats.0.iter()) {
            match info.kind {
                StageKind::Source => read += stats.input.load(Relaxed),
                StageKind::Sink => written += stats.input.load(Relaxed),
                _ => {}
            }
        }
        (read, written)
    }
}

/// The Prometheus text of one run, or of the workers of a split run's process (`contexts`, all
/// of one pipeline): every context's stage counts added up, each one's queues (labelled with its
/// worker in a split run), and each model stage once (the workers of a process share it).
pub(crate) fn prometheus_of(contexts: &[&RunContext]) -> String {
    let Some(first) = contexts.first() else {
        return String::new();
    };
    let graph = first.graph;
    let stages: Vec<(String, u64, u64)> = graph
        .stages
        .iter()
        .enumerate()
        .map(|(id, info)| {
            let sum = |get: fn(&StageStats) -> u64| -> u64 {
                contexts.iter().map(|c| get(&c.stats.0[id])).sum()
            };
            (
                info.label.to_owned(),
                sum(|s| s.input.load(Relaxed)),
                sum(|s| s.dead.load(Relaxed)),
            )
        })
        .collect();
    let mut cells: Vec<MetricsCell> = Vec::new();
    for context in contexts {
        for cell in context
            .inference
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if !cells.iter().any(|c| Arc::ptr_eq(c, cell)) {
                cells.push(cell.clone());
            }
        }
    }
    let mut models: Vec<_> = cells
        .iter()
        .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .collect();
    models.sort_by_key(|m| m.stage);
    let queues: Vec<_> = contexts
        .iter()
        .flat_map(|c| {
            let worker = c.split.map(|(worker, _)| worker);
            c.queues()
                .into_iter()
                .map(move |q| (graph.stages[q.stage as usize].label.to_owned(), worker, q))
        })
        .collect();
    render_prometheus(graph.name, &stages, &models, &queues)
}
