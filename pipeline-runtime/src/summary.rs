//! The run summary: per stage what came in, went on, was filtered or dead-lettered, and the
//! accounting that proves nothing was lost.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::context::Stats;
use crate::deadletter::DeadLetter;
use crate::graph::{Graph, StageKind};

/// One stage's counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageSummary {
    pub id: u32,
    pub kind: StageKind,
    pub label: &'static str,
    /// Elements pushed into the stage (records read, for a source; bad ones included).
    pub input: u64,
    /// Elements it passed on (for a sink: written).
    pub output: u64,
    pub filtered: u64,
    pub dead: u64,
    /// Elements it made beyond one per input: `flat_map` outputs, copies into several sliding
    /// windows and fan-out copies, minus inputs a `flat_map` turned into nothing; for
    /// `combine_per_key`, its results minus the inputs folded into them.
    pub created: i64,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Summary {
    pub pipeline: &'static str,
    pub stages: Vec<StageSummary>,
    pub elapsed: Duration,
    /// The dead letters, when they were kept in memory ([`crate::deadletter::DeadLetterTarget::Memory`]).
    pub dead_letters: Vec<DeadLetter>,
    /// The file the dead letters were written to, if any were.
    pub dead_letter_file: Option<PathBuf>,
    /// What each `run_inference` stage did.
    pub inference: Vec<crate::metrics::InferenceMetrics>,
    /// The run was asked to stop before its input ended (by this signal number; 0 for none):
    /// the counts cover what was read until then.
    pub stopped_by: Option<i32>,
    /// The bounded queues (merge channels, model intakes and results): capacity and peak.
    pub queues: Vec<crate::queue::QueueSummary>,
    /// In a run split across workers: what the `combine_per_key` stages shipped to the workers
    /// owning their keys (zero otherwise).
    pub exchanged: Exchanged,
    /// The job's workers (all processes), and this process's number: `1` and `0` unless the run
    /// was split (`--workers`, `--processes`).
    pub workers: usize,
    pub process: usize,
}

/// What a split run's `combine_per_key` stages shipped between workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exchanged {
    /// Accumulators (one per window, key and sending worker; one per element without
    /// pre-aggregation).
    pub records: u64,
    pub bytes: u64,
}

/// The run's totals. `read + created == written + filtered + dead + dropped` when nothing was lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub read: u64,
    pub created: i64,
    pub written: u64,
    pub filtered: u64,
    pub dead: u64,
    pub dropped: u64,
}

impl Totals {
    /// Whether every element is accounted for.
    pub fn balanced(&self) -> bool {
        self.read as i128 + self.created as i128
            == (self.written + self.filtered + self.dead + self.dropped) as i128
    }
}

impl Summary {
    pub(crate) fn collect(
        pipeline: &'static str,
        graph: &Graph,
        stats: &Stats,
        elapsed: Duration,
        dead_letters: Vec<DeadLetter>,
        dead_letter_file: Option<PathBuf>,
    ) -> Self {
        let n = graph.stages.len();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed);
        // Sources, merges, sinks and drops count their input, partitions each arm, flat_maps
        // their outputs, filters what they drop; every other count follows from the graph, stage
        // by stage in dataflow order. The totals use only counted figures, so they still prove
        // that nothing was lost.
        let mut port_out: Vec<Vec<u64>> = vec![Vec::new(); n];
        let mut stages: Vec<Option<StageSummary>> = vec![None; n];
        for id in topological(graph) {
            let (info, s) = (&graph.stages[id], &stats.0[id]);
            let counted_input = matches!(
                info.kind,
                StageKind::Source
                    | StageKind::Merge
                    | StageKind::Sink
                    | StageKind::Drop
                    | StageKind::Inference
            );
            let input = if counted_input {
                load(&s.input)
            } else {
                graph
                    .edges
                    .iter()
                    .filter(|e| e.to as usize == id)
                    .map(|e| {
                        port_out[e.from as usize]
                            .get(e.port as usize)
                            .copied()
                            .unwrap_or(0)
                    })
                    .sum()
            };
            let (filtered, dead) = (load(&s.filtered), load(&s.dead));
            let remaining = input.saturating_sub(filtered + dead);
            let ports: Vec<u64> = match info.kind {
                StageKind::Partition => s.ports.iter().map(load).collect(),
                StageKind::FlatMap | StageKind::Window | StageKind::Combine => {
                    vec![load(&s.produced)]
                }
                StageKind::Drop => vec![0],
                _ => vec![remaining],
            };
            let output: u64 = ports.iter().sum();
            let created = match info.kind {
                StageKind::FlatMap | StageKind::Window | StageKind::Combine => {
                    output as i64 - remaining as i64
                }
                _ => 0,
            } + load(&s.copies) as i64;
            port_out[id] = ports;
            stages[id] = Some(StageSummary {
                id: id as u32,
                kind: info.kind,
                label: info.label,
                input,
                output,
                filtered,
                dead,
                created,
            });
        }
        Self {
            pipeline,
            stages: stages
                .into_iter()
                .map(|s| s.expect("every stage is visited"))
                .collect(),
            elapsed,
            dead_letters,
            dead_letter_file,
            inference: Vec::new(),
            stopped_by: None,
            exchanged: Exchanged::default(),
            workers: 1,
            process: 0,
            queues: Vec::new(),
        }
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in &self.stages {
            match s.kind {
                StageKind::Source => t.read += s.input,
                StageKind::Sink => t.written += s.output,
                StageKind::Drop => t.dropped += s.input,
                _ => {}
            }
            t.filtered += s.filtered;
            t.dead += s.dead;
            t.created += s.created;
        }
        t
    }

    /// The stage's counts, by its number in the graph.
    pub fn stage(&self, id: u32) -> &StageSummary {
        &self.stages[id as usize]
    }
}

/// Stage ids, each after the stages feeding it.
fn topological(graph: &Graph) -> Vec<usize> {
    let n = graph.stages.len();
    let mut waiting: Vec<usize> = (0..n)
        .map(|id| graph.edges.iter().filter(|e| e.to as usize == id).count())
        .collect();
    let mut ready: Vec<usize> = (0..n).filter(|&id| waiting[id] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(id) = ready.pop() {
        order.push(id);
        for edge in graph.edges.iter().filter(|e| e.from as usize == id) {
            let to = edge.to as usize;
            waiting[to] -= 1;
            if waiting[to] == 0 {
                ready.push(to);
            }
        }
    }
    order
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .stages
            .iter()
            .map(|s| s.label.chars().count().min(48))
            .max()
            .unwrap_or(5);
        match self.stopped_by {
            None => writeln!(f, "{} finished in {:.2?}", self.pipeline, self.elapsed)?,
            Some(signal) => writeln!(
                f,
                "{} stopped by {} after {:.2?}: reading stopped, everything read was processed",
                self.pipeline,
                signal_name(signal),
                self.elapsed
            )?,
        }
        writeln!(
            f,
            "  {:>3}  {:<width$}  {:>12}  {:>12}  {:>10}  {:>10}",
            "#", "stage", "in", "out", "filtered", "dead"
        )?;
        for s in &self.stages {
            let label: String = if s.label.chars().count() > 48 {
                s.label.chars().take(47).chain(['…']).collect()
            } else {
                s.label.to_owned()
            };
            writeln!(
                f,
                "  {:>3}  {:<width$}  {:>12}  {:>12}  {:>10}  {:>10}",
                s.id, label, s.input, s.output, s.filtered, s.dead
            )?;
        }
        let t = self.totals();
        writeln!(
            f,
            "  read {} {} created {} = written {} + filtered {} + dead-lettered {} + dropped {}  {}",
            t.read,
            if t.created < 0 { '-' } else { '+' },
            t.created.unsigned_abs(),
            t.written,
            t.filtered,
            t.dead,
            t.dropped,
            if t.balanced() { "(all accounted for)" } else { "(DOES NOT ADD UP: please report this bug)" }
        )?;
        if self.exchanged.records != 0 {
            writeln!(
                f,
                "  exchanged between workers by key: {} accumulators, {} bytes",
                self.exchanged.records, self.exchanged.bytes
            )?;
        }
        for m in &self.inference {
            let ms = |s: f64| format!("{:.1} ms", s * 1e3);
            let mut extra = String::new();
            for (n, what) in [
                (m.failed_batches, "batches failed"),
                (m.timeouts, "timed out"),
                (m.prepare_failures, "inputs failed pre-processing"),
                (m.swaps, "hot swaps"),
                (m.swap_failures, "reloads failed"),
                (m.replacements, "replicas replaced"),
            ] {
                if n > 0 {
                    extra.push_str(&format!(", {n} {what}"));
                }
            }
            writeln!(
                f,
                "  stage {}: model `{}` on {} ({} replica{}): {} inferences in {} batches (mean {:.1}, largest {}), {} per batch (p95 <= {}), queue wait mean {}, loaded in {:.2?}{}",
                m.stage,
                m.model_id,
                m.device,
                m.replicas,
                if m.replicas == 1 { "" } else { "s" },
                m.inferences,
                m.batches,
                m.mean_batch(),
                m.largest_batch,
                ms(m.latency.mean()),
                m.latency.quantile_bound(0.95).map_or("-".into(), ms),
                ms(m.queue_wait.mean()),
                m.load_time,
                extra
            )?;
        }
        if !self.queues.is_empty() {
            let queues: Vec<String> = self
                .queues
                .iter()
                .map(|q| format!("{} {} {}/{}", q.stage, q.queue, q.peak, q.capacity))
                .collect();
            writeln!(
                f,
                "  queues, most batches held / capacity (by stage): {}",
                queues.join(", ")
            )?;
        }
        if let Some(path) = &self.dead_letter_file {
            writeln!(f, "  dead letters written to {}", path.display())?;
        }
        Ok(())
    }
}

/// `SIGINT` for 2, `SIGTERM` for 15, ...
pub fn signal_name(signal: i32) -> String {
    match signal {
        0 => "a stop request".to_owned(),
        2 => "SIGINT".to_owned(),
        15 => "SIGTERM".to_owned(),
        n => format!("signal {n}"),
    }
}
