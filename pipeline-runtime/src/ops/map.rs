use super::{forward_flush, linkable};
use crate::exec::Shared;
use crate::panic::guard;
use crate::push::{Pos, Push, StageCell};

/// `map(f)`: one output per input.
pub struct Map<F, N> {
    cell: StageCell,
    f: F,
    next: N,
}
linkable!(Map {});

impl<T, U, F, N> Push<T> for Map<F, N>
where
    F: FnMut(T) -> U + Send,
    N: Push<U>,
{
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, cx: &Shared) {
        self.cell.count();
        match guard(|| (self.f)(item)) {
            Ok(out) => self.next.push(out, pos, cx),
            Err(panic) => self.cell.dead(cx, pos, panic),
        }
    }
    forward_flush!();
}
