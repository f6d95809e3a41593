use super::{forward_flush, linkable};
use crate::check::InspectFn;
use crate::exec::Shared;
use crate::panic::guard;
use crate::push::{Pos, Push, StageCell};

/// `inspect(f)`: sees each element by reference and passes it on unchanged.
pub struct Inspect<F, I, N> {
    cell: StageCell,
    f: F,
    next: N,
    _input: std::marker::PhantomData<fn(I)>,
}
linkable!(Inspect {});

impl<T, F, N> Push<T> for Inspect<F, T, N>
where
    F: InspectFn<T>,
    N: Push<T>,
{
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, cx: &Shared) {
        match guard(|| (self.f)(&item)) {
            Ok(()) => self.next.push(item, pos, cx),
            Err(panic) => self.cell.dead(cx, pos, panic),
        }
    }
    forward_flush!();
}
