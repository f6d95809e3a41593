use super::{forward_flush, linkable};
use crate::context::RunContext;
use crate::panic::guard;
use crate::push::{Pos, Push, StageCell};
use crate::stage_fns::MapFn;

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
    fn push(&mut self, item: T, pos: Pos, run: &RunContext) {
        match guard(|| (self.f)(item)) {
            Ok(out) => self.next.push(out, pos, run),
            Err(panic) => self.cell.dead(run, pos, panic),
        }
    }
    forward_flush!();
}
