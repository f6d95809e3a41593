use crate::context::RunContext;
use crate::push::{Flow, Pos, Push};

/// Fan-out: a stream consumed by several chains. Every consumer but the last gets a clone; the
/// last gets the element itself. Consumers are a cons list `(a, (b, ()))`.
pub struct Tee<L, C> {
    /// The stage whose output is fanned out; the extra copies are counted against it.
    id: u32,
    copies: u64,
    consumers: L,
    /// Copies an element: `Clone::clone`, checked by `stages::fan_out`.
    copy: C,
}

impl<L, C> Tee<L, C> {
    pub fn new(id: u32, copy: C, consumers: L) -> Self {
        Self {
            id,
            copies: 0,
            consumers,
            copy,
        }
    }
}

/// The consumers of a fanned-out stream.
pub trait Consumers<T> {
    const LEN: u64;
    fn push_all(&mut self, item: T, pos: Pos, run: &RunContext, copy: &impl Fn(&T) -> T);
    fn flush_all(&mut self, run: &RunContext, partial: bool) -> Flow;
    fn finish_all(&mut self, run: &RunContext) -> crate::Result<()>;
    fn signal_all(&mut self, signal: crate::push::Signal, run: &RunContext);
}

impl<T, A: Push<T>> Consumers<T> for (A, ()) {
    const LEN: u64 = 1;
    #[inline(always)]
    fn push_all(&mut self, item: T, pos: Pos, run: &RunContext, _: &impl Fn(&T) -> T) {
        self.0.push(item, pos, run);
    }
    fn flush_all(&mut self, run: &RunContext, partial: bool) -> Flow {
        self.0.flush(run, partial)
    }
    fn finish_all(&mut self, run: &RunContext) -> crate::Result<()> {
        self.0.finish(run)
    }
    fn signal_all(&mut self, signal: crate::push::Signal, run: &RunContext) {
        self.0.signal(signal, run);
    }
}

impl<T, A: Push<T>, B, R> Consumers<T> for (A, (B, R))
where
    (B, R): Consumers<T>,
{
    const LEN: u64 = 1 + <(B, R) as Consumers<T>>::LEN;
    #[inline(always)]
    fn push_all(&mut self, item: T, pos: Pos, run: &RunContext, copy: &impl Fn(&T) -> T) {
        self.0.push(copy(&item), pos, run);
        self.1.push_all(item, pos, run, copy);
    }
    fn flush_all(&mut self, run: &RunContext, partial: bool) -> Flow {
        let a = self.0.flush(run, partial);
        let b = self.1.flush_all(run, partial);
        a.and(b)
    }
    fn finish_all(&mut self, run: &RunContext) -> crate::Result<()> {
        let a = self.0.finish(run);
        let b = self.1.finish_all(run);
        a.and(b)
    }
    fn signal_all(&mut self, signal: crate::push::Signal, run: &RunContext) {
        self.0.signal(signal, run);
        self.1.signal_all(signal, run);
    }
}

impl<L, C> Tee<L, C> {
    fn publish(&mut self, run: &RunContext) {
        if self.copies != 0 {
            run.stats.add_copies(self.id, self.copies);
            self.copies = 0;
        }
    }
}

impl<T, L: Consumers<T>, C: Fn(&T) -> T> Push<T> for Tee<L, C> {
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, run: &RunContext) {
        self.copies += L::LEN - 1;
        self.consumers.push_all(item, pos, run, &self.copy);
    }
    fn flush(&mut self, run: &RunContext, partial: bool) -> Flow {
        self.publish(run);
        self.consumers.flush_all(run, partial)
    }
    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        self.publish(run);
        self.consumers.finish_all(run)
    }
    fn signal(&mut self, signal: crate::push::Signal, run: &RunContext) {
        self.consumers.signal_all(signal, run);
    }
}
