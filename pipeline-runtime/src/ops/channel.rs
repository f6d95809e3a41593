use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::context::RunContext;
use crate::push::{Flow, Pos, Push, Signal};
use crate::queue::QueueGauge;

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
/// Elements of type `U` enter as `T` through `into`: the identity, except for the further inputs
/// of a merge, whose type was checked equal to the first input's.
pub struct ChannelOut<T, U, C> {
    tx: Sender<T>,
    buf: Batch<T>,
    batch: usize,
    closed: bool,
    /// The barrier this sender delivered and must see passed on before it sends anything more.
    aligning: Option<u64>,
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
            into,
            _input: std::marker::PhantomData,
        }
    }

    fn send(&mut self, run: &RunContext) {
        if self.buf.is_empty() || self.closed {
            return;
        }
        self.align(run);
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.batch));
        // Fails only when the consumer has gone, i.e. the run is already failing.
        if !self.tx.send(full) {
            self.closed = true;
        }
    }

    /// Before anything that follows a barrier goes out: waits for the barrier's alignment.
    fn align(&mut self, run: &RunContext) {
        if let Some(epoch) = self.aligning.take() {
            let tx = &self.tx.tx;
            self.tx.alignment.wait(epoch, run, || tx.is_closed());
        }
    }

    fn send_parcel(&mut self, parcel: Parcel<T>, run: &RunContext) {
        self.send(run);
        self.align(run);
        if !self.closed && !self.tx.send_parcel(parcel) {
            self.closed = true;
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
            Flow::Stop
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
        if let Signal::Barrier(barrier) = signal {
            self.aligning = Some(barrier.epoch);
        }
    }
}

/// The sending end of a bounded channel of batches; cloned for each segment that feeds it.
pub struct Sender<T> {
    tx: mpsc::Sender<Parcel<T>>,
    gauge: Arc<QueueGauge>,
    alignment: Arc<Alignment>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            gauge: self.gauge.clone(),
            alignment: self.alignment.clone(),
        }
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
        self.gauge
            .sample(self.tx.max_capacity() - self.tx.capacity());
        true
    }
}

/// The receiving end of a boundary's channel.
pub struct Receiver<T> {
    rx: mpsc::Receiver<Parcel<T>>,
    gauge: Arc<QueueGauge>,
    pub(crate) alignment: Arc<Alignment>,
    /// How many senders feed it (each sends `Closed` when done).
    pub(crate) senders: usize,
}

impl<T> Receiver<T> {
    /// The next parcel, or what `try_recv` says when none is waiting.
    pub(crate) fn try_recv(&mut self) -> Result<Parcel<T>, mpsc::error::TryRecvError> {
        let parcel = self.rx.try_recv()?;
        self.gauge.sample(self.rx.len());
        Ok(parcel)
    }

    /// Waits for the next parcel; `None` once every sender has gone.
    pub(crate) fn recv(&mut self) -> Option<Parcel<T>> {
        let parcel = self.rx.blocking_recv()?;
        self.gauge.sample(self.rx.len());
        Some(parcel)
    }
}

/// Makes a bounded channel of `capacity` batches fed by `senders` senders, reporting to `gauge`.
pub fn channel<T>(
    capacity: usize,
    gauge: Arc<QueueGauge>,
    senders: usize,
) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let alignment = Arc::new(Alignment::default());
    (
        Sender {
            tx,
            gauge: gauge.clone(),
            alignment: alignment.clone(),
        },
        Receiver {
            rx,
            gauge,
            alignment,
            senders: senders.max(1),
        },
    )
}
