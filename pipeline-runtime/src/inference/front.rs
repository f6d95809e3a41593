//! The front of a `run_inference` stage: fused into the segment in front of it, it prepares each
//! input on that segment's thread and hands them to the dispatcher, a full batch's worth at a
//! time. A partial batch stays in [`Pending`], shared with the dispatcher, which takes it by its
//! own timer — even while the segment in front is blocked reading its source.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel as cb;

use super::{ModelHandler, SharedHandler};
use crate::context::{Pos, RunContext};
use crate::metrics::{InferenceMetrics, MetricsCell};
use crate::panic::guard;
use crate::push::{Flow, Push, Signal, StageCell};
use crate::queue::QueueGauge;

/// An input with its position and what `prepare` made of it.
pub(crate) type Item<H> = (
    Pos,
    <H as ModelHandler>::Input,
    <H as ModelHandler>::Prepared,
);

/// Prepared inputs sent from the front to the dispatcher; `since` is when the first arrived.
pub(crate) struct Piece<H: SharedHandler> {
    pub since: Instant,
    pub items: Vec<Item<H>>,
}

/// What the front says to the dispatcher.
pub(crate) enum Msg<H: SharedHandler> {
    /// A full batch's worth of inputs.
    Piece(Piece<H>),
    /// The first input of a new partial batch arrived at this time: the dispatcher takes the
    /// partial batch from [`Pending`] when `max_wait` has passed.
    Started(Instant),
    /// A source has ended: after every input it sent.
    Signal(Signal),
}

/// Inputs prepared by the front and not yet sent.
pub(crate) struct Pending<H: SharedHandler> {
    pub since: Instant,
    pub items: Vec<Item<H>>,
    /// Pieces made from this buffer (counted under its lock): while the dispatcher has received
    /// fewer, a piece is on its way and the buffer's inputs must wait behind it.
    pub sent: u64,
    /// Whether the dispatcher keeps a timer for this buffer: set by the front when it says
    /// [`Msg::Started`], cleared by the dispatcher when it finds the buffer empty or takes it.
    /// While set, a new partial batch needs no message of its own (the timer, on firing, looks
    /// at the buffer's first input and waits again if that is not yet due): one message, and
    /// one wake-up of the dispatcher, per `max_wait` rather than per batch.
    pub armed: bool,
    max: usize,
}

impl<H: SharedHandler> Pending<H> {
    pub fn new(max: usize) -> SharedPending<H> {
        Arc::new(Mutex::new(Self {
            since: Instant::now(),
            items: Vec::with_capacity(max),
            sent: 0,
            armed: false,
            max,
        }))
    }

    /// Takes what waits, if anything does (the dispatcher, by its timer).
    pub fn take(&mut self) -> Option<Piece<H>> {
        self.armed = false;
        if self.items.is_empty() {
            return None;
        }
        let items = std::mem::replace(&mut self.items, Vec::with_capacity(self.max));
        Some(Piece {
            since: self.since,
            items,
        })
    }

    /// Takes what waits to send it down the channel (the front), counting the piece; the
    /// dispatcher's timer, if armed, stays armed for the next partial batch.
    fn take_to_send(&mut self) -> Option<Piece<H>> {
        let armed = self.armed;
        let piece = self.take();
        self.armed = armed;
        let piece = piece?;
        self.sent += 1;
        Some(piece)
    }
}

pub(crate) type SharedPending<H> = Arc<Mutex<Pending<H>>>;

pub(crate) fn lock_pending<H: SharedHandler>(
    pending: &SharedPending<H>,
) -> MutexGuard<'_, Pending<H>> {
    pending.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn lock_metrics(metrics: &MetricsCell) -> MutexGuard<'_, InferenceMetrics> {
    metrics.lock().unwrap_or_else(|e| e.into_inner())
}

/// The part of a `run_inference` stage fused into the segment in front of it.
pub struct Front<H: SharedHandler> {
    pub(crate) cell: StageCell,
    pub(crate) handler: Arc<H>,
    pub(crate) name: Arc<str>,
    pub(crate) pending: SharedPending<H>,
    pub(crate) max: usize,
    pub(crate) prepare_failures: u64,
    pub(crate) metrics: MetricsCell,
    pub(crate) tx: Option<cb::Sender<Msg<H>>>,
    pub(crate) intake: Arc<QueueGauge>,
}

impl<H: SharedHandler> Front<H> {
    fn send(&mut self, msg: Msg<H>) {
        // Fails only when the dispatcher has gone, i.e. the run is already failing.
        if let Some(tx) = &self.tx {
            if tx.send(msg).is_err() {
                self.tx = None;
            } else {
                self.intake.sample(tx.len());
            }
        }
    }

    fn send_pending(&mut self) {
        let piece = lock_pending(&self.pending).take_to_send();
        if let Some(piece) = piece {
            self.send(Msg::Piece(piece));
        }
    }

    fn publish(&mut self, run: &RunContext) {
        self.cell.publish(run);
        if self.prepare_failures != 0 {
            lock_metrics(&self.metrics).prepare_failures += self.prepare_failures;
            self.prepare_failures = 0;
        }
    }
}

impl<H: SharedHandler> Push<H::Input> for Front<H> {
    #[inline]
    fn push(&mut self, item: H::Input, pos: Pos, run: &RunContext) {
        self.cell.count();
        let error = match guard(|| self.handler.prepare(&item)) {
            Ok(Ok(prepared)) => {
                let mut p = lock_pending(&self.pending);
                let first = p.items.is_empty();
                if first {
                    p.since = Instant::now();
                }
                p.items.push((pos, item, prepared));
                let msg = if p.items.len() >= self.max {
                    p.take_to_send().map(Msg::Piece)
                } else if first && !p.armed {
                    p.armed = true;
                    Some(Msg::Started(p.since))
                } else {
                    None
                };
                drop(p);
                if let Some(msg) = msg {
                    self.send(msg);
                }
                return;
            }
            Ok(Err(error)) => error,
            Err(panic) => panic,
        };
        self.prepare_failures += 1;
        self.cell.dead(
            run,
            pos,
            format!(
                "preparing the input for model `{}` failed: {error}",
                self.name
            ),
        );
    }

    fn flush(&mut self, run: &RunContext, _partial: bool) -> Flow {
        // Partial batches are the dispatcher's to take, by its timer.
        self.publish(run);
        if self.tx.is_some() {
            Flow::Continue
        } else {
            Flow::Stop
        }
    }

    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        self.send_pending();
        self.publish(run);
        // Dropping the sender tells the dispatcher the input has ended.
        self.tx = None;
        Ok(())
    }

    /// Passed on behind every input that came before it: the partial batch waiting here goes
    /// first.
    fn signal(&mut self, signal: Signal, _: &RunContext) {
        self.send_pending();
        self.send(Msg::Signal(signal));
    }
}

/// The dispatcher's end of the channel from the front, and the front's partial batch.
pub(crate) struct Intake<H: SharedHandler> {
    pub(crate) input: Option<cb::Receiver<Msg<H>>>,
    pub(crate) gauge: Arc<QueueGauge>,
    pub(crate) pending: SharedPending<H>,
    /// When the front's partial batch is due (its first input's arrival + max wait).
    pub(crate) due: Option<Instant>,
    /// Pieces received from the front, and whether taking its partial batch waits for one.
    pub(crate) received: u64,
    pub(crate) deferred: bool,
}

impl<H: SharedHandler> Intake<H> {
    pub(crate) fn received_piece(&mut self) {
        self.received += 1;
        if std::mem::take(&mut self.deferred) {
            self.due = Some(Instant::now());
        }
    }

    pub(crate) fn due_at(&mut self, due: Instant) {
        self.due = Some(self.due.map_or(due, |d| d.min(due)));
    }

    /// The front's partial batch now, due or not (another lane's is due: see
    /// `Dispatcher::on_timers`), unless a full piece made before it is still in the channel.
    pub(crate) fn take_now(&mut self) -> Option<Piece<H>> {
        let mut p = lock_pending(&self.pending);
        if p.sent != self.received || p.items.is_empty() {
            return None;
        }
        self.due = None;
        p.take()
    }

    /// The front's partial batch, once it is due.
    pub(crate) fn take_due(&mut self, now: Instant, max_wait: Duration) -> Option<Piece<H>> {
        if self.due.is_none_or(|due| due > now) {
            return None;
        }
        self.due = None;
        let mut p = lock_pending(&self.pending);
        if p.sent != self.received {
            // A full piece made before these inputs is still in the channel: take it first,
            // then look again, so inputs keep their order.
            self.deferred = true;
            return None;
        }
        if p.items.is_empty() {
            p.armed = false;
            return None;
        }
        let due = p.since + max_wait;
        if due <= now {
            p.take()
        } else {
            self.due = Some(due);
            None
        }
    }
}
