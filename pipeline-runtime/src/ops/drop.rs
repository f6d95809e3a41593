use crate::context::RunContext;
use crate::push::{Flow, Pos, Push, StageCell};

/// `drop()`: the end of a chain whose elements are discarded on purpose (counted as dropped).
pub struct Discard<I> {
    cell: StageCell,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<I> Discard<I> {
    pub fn new(id: u32) -> Self {
        Self {
            cell: StageCell::new(id),
            _input: std::marker::PhantomData,
        }
    }
}

impl<T: Send> Push<T> for Discard<T> {
    #[inline(always)]
    fn push(&mut self, _: T, _: Pos, _: &RunContext) {
        self.cell.count();
    }

    fn flush(&mut self, run: &RunContext, _partial: bool) -> Flow {
        self.cell.publish(run);
        Flow::Continue
    }

    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        self.cell.publish(run);
        run.terminal_finished(self.cell.id);
        Ok(())
    }

    /// Nothing to make durable: a drop has reached every barrier it receives.
    fn signal(&mut self, signal: crate::push::Signal, run: &RunContext) {
        if let crate::push::Signal::Barrier(barrier) = signal {
            run.checkpoint_reached(self.cell.id, barrier.epoch, true);
        }
    }
}
