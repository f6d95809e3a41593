use std::sync::Arc;

use tokio::sync::mpsc;

use crate::context::RunContext;
use crate::push::{Flow, Pos, Push};
use crate::queue::QueueGauge;

/// A batch of elements crossing a boundary. Batching keeps the channel's cost per element small.
pub type Batch<T> = Vec<(Pos, T)>;

/// What a boundary's channel carries: batches, and the end of a source, in order with them.
pub enum Parcel<T> {
    Batch(Batch<T>),
    SourceEnded(crate::push::Ended),
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
            into,
            _input: std::marker::PhantomData,
        }
    }

    fn send(&mut self) {
        if self.buf.is_empty() || self.closed {
            return;
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.batch));
        // Fails only when the consumer has gone, i.e. the run is already failing.
        if !self.tx.send(full) {
            self.closed = true;
        }
    }
}

impl<T, U, C: Fn(U) -> T> Push<U> for ChannelOut<T, U, C> {
    #[inline(always)]
    fn push(&mut self, item: U, pos: Pos, _: &RunContext) {
        self.buf.push((pos, (self.into)(item)));
        if self.buf.len() >= self.batch {
            self.send();
        }
    }

    fn flush(&mut self, _: &RunContext, partial: bool) -> Flow {
        if partial {
            self.send();
        }
        if self.closed {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn finish(&mut self, _: &RunContext) -> crate::Result<()> {
        self.send();
        Ok(())
    }

    fn source_ended(&mut self, ended: crate::push::Ended, _: &RunContext) {
        // After everything before it.
        self.send();
        if !self.closed && !self.tx.send_parcel(Parcel::SourceEnded(ended)) {
            self.closed = true;
        }
    }
}

/// The sending end of a bounded channel of batches; cloned for each segment that feeds it.
pub struct Sender<T> {
    tx: mpsc::Sender<Parcel<T>>,
    gauge: Arc<QueueGauge>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            gauge: self.gauge.clone(),
        }
    }
}

impl<T> Sender<T> {
    /// Sends a batch, waiting while the channel is full; `false` once the receiver has gone.
    pub(crate) fn send(&self, batch: Batch<T>) -> bool {
        self.send_parcel(Parcel::Batch(batch))
    }

    /// Passes on the end of a source, after the batches sent before it.
    pub(crate) fn send_ended(&self, ended: crate::push::Ended) -> bool {
        self.send_parcel(Parcel::SourceEnded(ended))
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

/// Makes a bounded channel of `capacity` batches, reporting to `gauge`.
pub fn channel<T>(capacity: usize, gauge: Arc<QueueGauge>) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        Sender {
            tx,
            gauge: gauge.clone(),
        },
        Receiver { rx, gauge },
    )
}
