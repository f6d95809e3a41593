use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::context::RunContext;
use crate::push::{Flow, Pos, Push, Signal};
use crate::queue::QueueGauge;

/// Wakes the task reading a channel (see `segment`), from any thread.
pub type Wake = Box<dyn Fn() + Send + Sync>;

/// A batch of elements crossing a boundary. Batching keeps the channel's cost per element small.
pub type Batch<T> = Vec<(Pos, T)>;

/// What a boundary's channel carries: batches, and signals (the end of a source, checkpoint
/// barriers) in order with them; `Closed` when one of its senders is done.
pub enum Parcel<T> {
    Batch(Batch<T>),
    Signal(Signal),
    Closed,
}

/// Checkpoint alignment across a channel with several senders (a merge of segments): the
/// receiver passes barrier *n* on once every sender still open has delivered it, and a sender
/// that has delivered it sends nothing after it until then, so that what follows a barrier on
/// one input never overtakes what precedes it on another (see `checkpoint`).
#[derive(Default)]
pub(crate) struct Alignment {
    passed: Mutex<u64>,
    changed: Condvar,
}

impl Alignment {
    /// The receiver has passed barrier `epoch` on.
    pub(crate) fn pass(&self, epoch: u64) {
        let mut passed = self.passed.lock().unwrap_or_else(|e| e.into_inner());
        *passed = (*passed).max(epoch);
        self.changed.notify_all();
    }

    /// Whether barrier `epoch` has been passed on.
    fn passed(&self, epoch: u64) -> bool {
        *self.passed.lock().unwrap_or_else(|e| e.into_inner()) >= epoch
    }

    /// Waits until barrier `epoch` has been passed on, the run fails, or the receiver has gone.
    fn wait(&self, epoch: u64, run: &RunContext, gone: impl Fn() -> bool) {
        let mut passed = self.passed.lock().unwrap_or_else(|e| e.into_inner());
        while *passed < epoch && !run.aborted() && !gone() {
            passed = self
                .changed
                .wait_timeout(passed, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The end of a segment that feeds a boundary (merge, sink): buffers elements into batches and
/// sends them over a bounded channel, blocking when it is full — that is the backpressure.
///
/// Where the segments share a thread (a worker of a split run, see `segment`), it never waits:
/// its `flush` says [`Flow::Wait`] while the channel holds its capacity or a barrier it sent is
/// not aligned yet, and what must not go before that alignment waits in `pending`, in order.
///
/// Elements of type `U` enter as `T` through `into`: the identity, except for the further inputs
/// of a merge, whose type was checked equal to the first input's.
pub struct ChannelOut<T, U, C> {
    tx: Sender<T>,
    buf: Batch<T>,
    batch: usize,
    closed: bool,
    /// The barrier this sender delivered and must see passed on before it sends anything more.
    aligning: Option<u64>,
    /// Where segments share a thread: what waits for `aligning` to be passed on, in order.
    pending: VecDeque<Parcel<T>>,
    into: C,
    _input: std::marker::PhantomData<fn(U)>,
}

impl<T, U, C> ChannelOut<T, U, C> {
    pub fn new(tx: Sender<T>, batch: usize, into: C) -> Self {
        let batch = batch.max(1);
        Self {
            tx,
            buf: Vec::with_capacity(batch),
            batch,
            closed: false,
            aligning: None,
            pending: VecDeque::new(),
            into,
            _input: std::marker::PhantomData,
        }
    }

    fn send(&mut self, run: &RunContext) {
        if self.buf.is_empty() || self.closed || !self.drain(run) {
            return;
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.batch));
        // Fails only when the consumer has gone, i.e. the run is already failing.
        if !self.tx.send(full) {
            self.closed = true;
        }
    }

    /// Whether the barrier this sender delivered last has been passed on (so that what follows
    /// it may go). Waits for it, unless the segments share a thread.
    fn aligned(&mut self, run: &RunContext) -> bool {
        let Some(epoch) = self.aligning else {
            return true;
        };
        let tx = &self.tx.tx;
        if self.tx.soft.is_none() {
            self.tx.alignment.wait(epoch, run, || tx.is_closed());
        } else if !self.tx.alignment.passed(epoch) && !run.aborted() && !tx.is_closed() {
            return false;
        }
        self.aligning = None;
        true
    }

    /// Sends what waited for an alignment, as far as the alignments allow; whether nothing
    /// waits any more.
    fn drain(&mut self, run: &RunContext) -> bool {
        while self.aligned(run) {
            let Some(parcel) = self.pending.pop_front() else {
                return true;
            };
            self.deliver(parcel);
        }
        false
    }

    /// Sends a parcel now; a barrier must be passed on before anything after it goes.
    fn deliver(&mut self, parcel: Parcel<T>) {
        let barrier = match &parcel {
            Parcel::Signal(Signal::Barrier(barrier)) => Some(barrier.epoch),
            _ => None,
        };
        if self.closed || !self.tx.send_parcel(parcel) {
            self.closed = true;
            self.pending.clear();
        } else if barrier.is_some() {
            self.aligning = barrier;
        }
    }

    fn send_parcel(&mut self, parcel: Parcel<T>, run: &RunContext) {
        self.send(run);
        if self.drain(run) {
            self.deliver(parcel);
        } else {
            // After the elements before it.
            if !self.buf.is_empty() {
                let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(self.batch));
                self.pending.push_back(Parcel::Batch(batch));
            }
            self.pending.push_back(parcel);
        }
    }
}

impl<T, U, C: Fn(U) -> T> Push<U> for ChannelOut<T, U, C> {
    #[inline(always)]
    fn push(&mut self, item: U, pos: Pos, run: &RunContext) {
        self.buf.push((pos, (self.into)(item)));
        if self.buf.len() >= self.batch {
            self.send(run);
        }
    }

    fn flush(&mut self, run: &RunContext, partial: bool) -> Flow {
        if partial {
            self.send(run);
        }
        if self.closed {
            return Flow::Stop;
        }
        let Some(capacity) = self.tx.soft else {
            return Flow::Continue;
        };
        if !self.drain(run) || self.tx.queued() >= capacity {
            Flow::Wait
        } else {
            Flow::Continue
        }
    }

    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        self.send_parcel(Parcel::Closed, run);
        Ok(())
    }

    fn signal(&mut self, signal: Signal, run: &RunContext) {
        // After everything before it.
        self.send_parcel(Parcel::Signal(signal), run);
    }
}

/// The sending end of a bounded channel of batches; cloned for each segment that feeds it.
pub struct Sender<T> {
    tx: mpsc::Sender<Parcel<T>>,
    gauge: Arc<QueueGauge>,
    alignment: Arc<Alignment>,
    /// Where segments share a thread: the capacity its senders respect by waiting to send
    /// (`Flow::Wait`), the channel itself having room for much more, so that no send blocks.
    soft: Option<usize>,
    /// What wakes the receiving task when it waits on another thread's schedule (see `segment`).
    /// Last: see [`WakeOnDrop`].
    wake: WakeOnDrop,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            gauge: self.gauge.clone(),
            alignment: self.alignment.clone(),
            soft: self.soft,
            wake: WakeOnDrop(self.wake.0.clone()),
        }
    }
}

/// A sender's hold on the receiving task's wake: dropped after the sender's channel end (it is
/// the sender's last field), it wakes the task, which then finds the channel closed if this was
/// the last sender (woken before, it could find it open and wait for good).
struct WakeOnDrop(Arc<OnceLock<Wake>>);

impl WakeOnDrop {
    fn wake(&self) {
        if let Some(wake) = self.0.get() {
            wake();
        }
    }
}

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.wake();
    }
}

impl<T> Sender<T> {
    /// Sends a batch, waiting while the channel is full; `false` once the receiver has gone.
    pub(crate) fn send(&self, batch: Batch<T>) -> bool {
        self.send_parcel(Parcel::Batch(batch))
    }

    /// Passes on a signal, after the batches sent before it.
    pub(crate) fn send_signal(&self, signal: Signal) -> bool {
        self.send_parcel(Parcel::Signal(signal))
    }

    fn send_parcel(&self, parcel: Parcel<T>) -> bool {
        if self.tx.blocking_send(parcel).is_err() {
            return false;
        }
        // Permits in use: the batches queued (and any a sender has reserved).
        self.gauge.sample(self.queued());
        self.wake.wake();
        true
    }

    /// The batches queued (and any a sender has reserved).
    fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// The receiving end of a boundary's channel.
pub struct Receiver<T> {
    rx: mpsc::Receiver<Parcel<T>>,
    gauge: Arc<QueueGauge>,
    pub(crate) alignment: Arc<Alignment>,
    /// How many senders feed it (each sends `Closed` when done).
    pub(crate) senders: usize,
    wake: Arc<OnceLock<Wake>>,
}

impl<T> Receiver<T> {
    /// The next parcel, or what `try_recv` says when none is waiting.
    pub(crate) fn try_recv(&mut self) -> Result<Parcel<T>, mpsc::error::TryRecvError> {
        let parcel = self.rx.try_recv()?;
        self.gauge.sample(self.rx.len());
        Ok(parcel)
    }

    /// What wakes the task reading this channel when a sender has sent something.
    pub(crate) fn wake_with(&mut self, wake: Wake) {
        let _ = self.wake.set(wake);
    }

    /// Waits for the next parcel; `None` once every sender has gone.
    pub(crate) fn recv(&mut self) -> Option<Parcel<T>> {
        let parcel = self.rx.blocking_recv()?;
        self.gauge.sample(self.rx.len());
        Some(parcel)
    }
}

/// Makes a bounded channel of `capacity` batches fed by `senders` senders, reporting to `gauge`.
/// `shared_thread`: its ends run on one thread (a worker of a split run, see `segment`), so a
/// full channel must not block a sender: its senders respect the capacity by saying
/// [`Flow::Wait`] instead.
pub fn channel<T>(
    capacity: usize,
    gauge: Arc<QueueGauge>,
    senders: usize,
    shared_thread: bool,
) -> (Sender<T>, Receiver<T>) {
    // Room for any backlog: what the senders respect is `capacity`.
    const ROOMY: usize = 1 << 40;
    let capacity = capacity.max(1);
    let (tx, rx) = mpsc::channel(if shared_thread { ROOMY } else { capacity });
    let alignment = Arc::new(Alignment::default());
    let wake = Arc::new(OnceLock::new());
    (
        Sender {
            tx,
            gauge: gauge.clone(),
            alignment: alignment.clone(),
            soft: shared_thread.then_some(capacity),
            wake: WakeOnDrop(wake.clone()),
        },
        Receiver {
            rx,
            gauge,
            alignment,
            senders: senders.max(1),
            wake,
        },
    )
}
