use super::linkable;
use crate::check::FilterFn;
use crate::exec::Shared;
use crate::panic::guard;
use crate::push::{Flow, Pos, Push, StageCell};

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
    fn publish(&mut self, cx: &Shared) {
        self.cell.publish(cx);
        if self.filtered != 0 {
            cx.stats.add_filtered(self.cell.id, self.filtered);
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
    fn push(&mut self, item: T, pos: Pos, cx: &Shared) {
        match guard(|| (self.f)(&item)) {
            Ok(true) => self.next.push(item, pos, cx),
            Ok(false) => self.filtered += 1,
            Err(panic) => self.cell.dead(cx, pos, panic),
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
