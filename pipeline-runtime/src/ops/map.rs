use super::{forward_flush, linkable};
use crate::check::MapFn;
use crate::exec::Shared;
use crate::panic::enter;
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
        enter(self.cell.id);
        let out = (self.f)(item);
        self.next.push(out, pos, cx);
    }
    forward_flush!();
}
