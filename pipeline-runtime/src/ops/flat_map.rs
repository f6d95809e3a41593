use super::linkable;
use crate::check::FlatMapFn;
use crate::exec::Shared;
use crate::panic::guard;
use crate::push::{Flow, Pos, Push, StageCell};

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
    fn publish(&mut self, cx: &Shared) {
        self.cell.publish(cx);
        if self.produced != 0 {
            cx.stats.add_produced(self.cell.id, self.produced);
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
    fn push(&mut self, item: T, pos: Pos, cx: &Shared) {
        let Self {
            f, next, produced, ..
        } = self;
        // Downstream stages guard themselves, so a panic caught here came from `f` or from the
        // iterator it returned; outputs already pushed stay pushed and are counted.
        if let Err(panic) = guard(|| {
            for out in f(item) {
                *produced += 1;
                next.push(out, pos, cx);
            }
        }) {
            self.cell.dead(cx, pos, panic);
        }
    }

    fn flush(&mut self, cx: &Shared, partial: bool) -> Flow {
        self.publish(cx);
        self.next.flush(cx, partial)
    }

    fn finish(&mut self, cx: &Shared) -> crate::Result<()> {
        self.publish(cx);
        self.next.finish(cx)
    }

    fn source_ended(&mut self, ended: crate::push::Ended, cx: &Shared) {
        self.next.source_ended(ended, cx);
    }
}
