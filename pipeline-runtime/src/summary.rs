//! The run summary: per stage what came in, went on, was filtered or dead-lettered, and the
//! accounting that proves nothing was lost.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::deadletter::DeadLetter;
use crate::exec::Stats;
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
    /// Elements it made beyond one per input: `flat_map` outputs and fan-out copies, minus
    /// inputs a `flat_map` turned into nothing.
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
        let stages = graph
            .stages
            .iter()
            .zip(stats.0.iter())
            .enumerate()
            .map(|(id, (info, s))| {
                let input = s.input.load(Relaxed);
                let filtered = s.filtered.load(Relaxed);
                let dead = s.dead.load(Relaxed);
                let copies = s.copies.load(Relaxed) as i64;
                let (output, created) = match info.kind {
                    StageKind::FlatMap => {
                        let produced = s.produced.load(Relaxed);
                        (produced, produced as i64 - (input - dead) as i64 + copies)
                    }
                    StageKind::Drop => (0, 0),
                    _ => (input - filtered - dead, copies),
                };
                StageSummary {
                    id: id as u32,
                    kind: info.kind,
                    label: info.label,
                    input,
                    output,
                    filtered,
                    dead,
                    created,
                }
            })
            .collect();
        Self {
            pipeline,
            stages,
            elapsed,
            dead_letters,
            dead_letter_file,
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

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .stages
            .iter()
            .map(|s| s.label.chars().count().min(48))
            .max()
            .unwrap_or(5);
        writeln!(f, "{} finished in {:.2?}", self.pipeline, self.elapsed)?;
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
        if let Some(path) = &self.dead_letter_file {
            writeln!(f, "  dead letters written to {}", path.display())?;
        }
        Ok(())
    }
}
