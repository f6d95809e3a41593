use tokio::sync::mpsc;

use crate::exec::Shared;
use crate::push::{Flow, Pos, Push};

/// A batch of elements crossing a boundary. Batching keeps the channel's cost per element small.
pub type Batch<T> = Vec<(Pos, T)>;

/// The end of a segment that feeds a boundary (merge, sink): buffers elements into batches and
/// sends them over a bounded channel, blocking when it is full — that is the backpressure.
///
/// Elements of type `U` enter as `T` through `into`: the identity, except for the further inputs
/// of a merge, whose type was checked equal to the first input's.
pub struct ChannelOut<T, U, C> {
    tx: mpsc::Sender<Batch<T>>,
    buf: Batch<T>,
    batch: usize,
    closed: bool,
    into: C,
    _input: std::marker::PhantomData<fn(U)>,
}

impl<T, U, C> ChannelOut<T, U, C> {
    pub fn new(tx: mpsc::Sender<Batch<T>>, batch: usize, into: C) -> Self {
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
        if self.tx.blocking_send(full).is_err() {
            self.closed = true;
        }
    }
}

impl<T, U, C: Fn(U) -> T> Push<U> for ChannelOut<T, U, C> {
    #[inline(always)]
    fn push(&mut self, item: U, pos: Pos, _: &Shared) {
        self.buf.push((pos, (self.into)(item)));
        if self.buf.len() >= self.batch {
            self.send();
        }
    }

    fn flush(&mut self, _: &Shared, partial: bool) -> Flow {
        if partial {
            self.send();
        }
        if self.closed {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn finish(&mut self, _: &Shared) -> crate::Result<()> {
        self.send();
        Ok(())
    }
}

/// The receiving end of a boundary's channel.
pub struct Receiver<T>(pub(crate) mpsc::Receiver<Batch<T>>);

impl<T> Receiver<T> {
    /// The next batch, or what `try_recv` says when none is waiting.
    pub(crate) fn try_recv(&mut self) -> Result<Batch<T>, mpsc::error::TryRecvError> {
        self.0.try_recv()
    }

    /// Waits for the next batch; `None` once every sender has gone.
    pub(crate) fn recv(&mut self) -> Option<Batch<T>> {
        self.0.blocking_recv()
    }
}

/// Makes the channel in front of a boundary.
pub fn channel<T>(capacity: usize) -> (mpsc::Sender<Batch<T>>, Receiver<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (tx, Receiver(rx))
}
