//! The push protocol every fused stage implements.
//!
//! A segment of the pipeline (from a source or a channel to the next boundary) is one value whose
//! type nests every stage (`Map<F, Filter<G, ChannelOut<T>>>`): pushing an element into it runs the
//! whole segment as straight-line, monomorphized code, with no channel, box or allocation between
//! stages.

pub use crate::context::Pos;
use crate::context::RunContext;

/// Whether downstream still accepts elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Flow {
    Continue,
    /// A downstream consumer has gone (the run is stopping): stop reading.
    Stop,
    /// Downstream cannot take more now: read on later. Only where a worker's segments share its
    /// timely thread and so must not wait for each other (see `segment`); elsewhere a full
    /// channel waits instead.
    Wait,
}

impl Flow {
    /// The flow of two branches (a fan-out, a partition's arms): stopped if either stopped,
    /// else waiting if either waits.
    #[inline]
    pub fn and(self, other: Flow) -> Flow {
        match (self, other) {
            (Flow::Stop, _) | (_, Flow::Stop) => Flow::Stop,
            (Flow::Wait, _) | (_, Flow::Wait) => Flow::Wait,
            _ => Flow::Continue,
        }
    }
}

/// A stage that elements of type `T` are pushed into.
#[diagnostic::on_unimplemented(
    message = "this stage cannot take elements of type `{T}`",
    note = "every stage's input type must equal the output type of the stage before it"
)]
pub trait Push<T> {
    /// Runs this stage and everything fused after it on one element.
    fn push(&mut self, item: T, pos: Pos, run: &RunContext);

    /// Called between chunks of input: publishes counters and, with `partial`, sends on batches
    /// that are not full yet (when the segment is about to wait for input, so nothing lingers).
    fn flush(&mut self, run: &RunContext, partial: bool) -> Flow;

    /// End of input: flush, and let sinks finish their output.
    fn finish(&mut self, run: &RunContext) -> crate::Result<()>;

    /// A notice that travels in order with the elements, through channels and model stages too:
    /// the end of a source, or a checkpoint barrier (see [`Signal`]).
    fn signal(&mut self, signal: Signal, run: &RunContext);
}

/// What travels down the pipeline in order with the elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// A source has ended: nothing from it comes after this, so that a `window` behind a merge
    /// stops waiting for that source's event times.
    Ended(Ended),
    /// Checkpoint barrier: every element before it belongs to epoch `n` or earlier. A stage
    /// passes it on once everything before it has gone on (a merge: once every input delivered
    /// it); a sink makes what it wrote durable, and when every sink has, the sources acknowledge
    /// their input up to it (see `context::Checkpoints`).
    Barrier(Barrier),
    /// Sent by a `window` whose watermark moved on with no element to carry it (a source went
    /// idle, or wall time passed processing-time windows), at a barrier or between batches: the
    /// `combine_per_key` after it emits the windows this closes, and goes no further with it.
    Watermark(i64),
}

/// A checkpoint barrier: the end of epoch `epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Barrier {
    pub epoch: u64,
}

/// Checkpoint alignment where several inputs meet (a merge's channel, a junction): counts, per
/// epoch, the inputs that delivered its barrier; a barrier goes on once every input still open
/// has.
#[derive(Debug, Default)]
pub(crate) struct BarrierCount {
    arrived: std::collections::BTreeMap<u64, usize>,
}

impl BarrierCount {
    /// One input delivered `barrier`.
    pub(crate) fn arrive(&mut self, barrier: Barrier) {
        *self.arrived.entry(barrier.epoch).or_default() += 1;
    }

    /// The next barrier every one of the `open` inputs has delivered, if any (taken).
    pub(crate) fn next_aligned(&mut self, open: usize) -> Option<Barrier> {
        let entry = self.arrived.first_entry()?;
        if *entry.get() < open {
            return None;
        }
        Some(Barrier {
            epoch: entry.remove_entry().0,
        })
    }
}

/// The notice that a source has ended, as it travels down the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    pub source: u32,
    /// Set by a `window`: its watermark once the source no longer holds it back, so that the
    /// `combine_per_key` after it emits the windows that closes without waiting for an element.
    pub watermark: Option<i64>,
}

/// A stage's number and, for the stages whose input cannot be derived from the graph (merges,
/// sinks, drops), its own count of elements pushed into it, published to the shared counters on
/// flush so the hot path touches no atomic. Element-wise stages count nothing per element: the
/// summary derives their counts from their neighbours'.
#[derive(Debug)]
pub struct StageCell {
    pub(crate) id: u32,
    pub(crate) seen: u64,
}

impl StageCell {
    pub fn new(id: u32) -> Self {
        Self { id, seen: 0 }
    }

    #[inline(always)]
    pub(crate) fn count(&mut self) {
        self.seen += 1;
    }

    pub(crate) fn publish(&mut self, run: &RunContext) {
        if self.seen != 0 {
            run.stats.add_input(self.id, self.seen);
            self.seen = 0;
        }
    }

    /// Sends the element's failure to the dead letters.
    #[cold]
    pub(crate) fn dead(&self, run: &RunContext, pos: Pos, error: String) {
        run.dead_letter(self.id, pos, error, None);
    }
}
