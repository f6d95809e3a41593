use super::{forward_flush, linkable};
use crate::exec::Shared;
use crate::panic::guard;
use crate::push::{Pos, Push, StageCell};

/// `inspect(f)`: sees each element by reference and passes it on unchanged.
pub struct Inspect<F, N> {
    cell: StageCell,
    f: F,
    next: N,
}
linkable!(Inspect {});

impl<T, F, N> Push<T> for Inspect<F, N>
where
    F: FnMut(&T) + Send,
    N: Push<T>,
{
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, cx: &Shared) {
        self.cell.count();
        match guard(|| (self.f)(&item)) {
            Ok(()) => self.next.push(item, pos, cx),
            Err(panic) => self.cell.dead(cx, pos, panic),
        }
    }
    forward_flush!();
}
