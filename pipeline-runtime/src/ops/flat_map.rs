use super::linkable;
use crate::context::RunContext;
use crate::panic::guard;
use crate::push::{Flow, Pos, Push, StageCell};
use crate::stage_fns::FlatMapFn;

/// `flat_map(f)`: zero or more outputs per input, all keeping the input's position.
pub struct FlatMap<F, I, N> {
    cell: StageCell,
    f: F,
    produced: u64,
    next: N,
    _input: std::marker::PhantomData<fn(I)>,
}
linkable!(FlatMap { produced });

impl<F, I, N> FlatMap<F, I, N> {
    fn publish(&mut self, run: &RunContext) {
        self.cell.publish(run);
        if self.produced != 0 {
            run.stats.add_produced(self.cell.id, self.produced);
            self.produced = 0;
        }
    }
}

impl<T, F, N> Push<T> for FlatMap<F, T, N>
where
    F: FlatMapFn<T>,
    N: Push<<F::Iter as IntoIterator>::Item>,
{
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, run: &RunContext) {
        let Self {
            f, next, produced, ..
        } = self;
        // Downstream stages guard themselves, so a panic caught here came from `f` or from the
        // iterator it returned; outputs already pushed stay pushed and are counted.
        if let Err(panic) = guard(|| {
            for out in f(item) {
                *produced += 1;
                next.push(out, pos, run);
            }
        }) {
            self.cell.dead(run, pos, panic);
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
