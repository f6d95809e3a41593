use super::{forward_flush, linkable};
use crate::check::MapFn;
use crate::exec::Shared;
use crate::panic::guard;
use crate::push::{Pos, Push, StageCell};

/// `map(f)`: one output per input.
pub struct Map<F, I, N> {
    cell: StageCell,
    f: F,
    next: N,
    _input: std::marker::PhantomData<fn(I)>,
}
linkable!(Map {});

impl<T, F, N> Push<T> for Map<F, T, N>
where
    F: MapFn<T>,
    N: Push<F::Out>,
{
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, cx: &Shared) {
        match guard(|| (self.f)(item)) {
            Ok(out) => self.next.push(out, pos, cx),
            Err(panic) => self.cell.dead(cx, pos, panic),
        }
    }
    forward_flush!();
}
