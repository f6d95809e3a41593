use super::linkable;
use crate::context::RunContext;
use crate::panic::guard;
use crate::push::{Flow, Pos, Push, StageCell};
use crate::stage_fns::FilterFn;

/// `filter(f)`: keeps the elements for which `f` is true; the others are counted as filtered.
pub struct Filter<F, I, N> {
    cell: StageCell,
    f: F,
    filtered: u64,
    next: N,
    _input: std::marker::PhantomData<fn(I)>,
}
linkable!(Filter { filtered });

impl<F, I, N> Filter<F, I, N> {
    fn publish(&mut self, run: &RunContext) {
        self.cell.publish(run);
        if self.filtered != 0 {
            run.stats.add_filtered(self.cell.id, self.filtered);
            self.filtered = 0;
        }
    }
}

impl<T, F, N> Push<T> for Filter<F, T, N>
where
    F: FilterFn<T>,
    N: Push<T>,
{
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, run: &RunContext) {
        match guard(|| (self.f)(&item)) {
            Ok(true) => self.next.push(item, pos, run),
            Ok(false) => self.filtered += 1,
            Err(panic) => self.cell.dead(run, pos, panic),
        }
    }

    fn flush(&mut self, run: &RunContext, partial: bool) -> Flow {
        self.publish(run);
        self.next.flush(run, partial)
    }

    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        self.publish(run);
        self.next.finish(run)
    }

    fn signal(&mut self, signal: crate::push::Signal, run: &RunContext) {
        self.next.signal(signal, run);
    }
}
