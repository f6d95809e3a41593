use std::fmt::Display;

use super::{forward_flush, linkable};
use crate::exec::Shared;
use crate::panic::guard;
use crate::push::{Pos, Push, StageCell};

/// `try_map(f)`: `Ok` goes on, `Err` goes to the dead letters with the error's text.
pub struct TryMap<F, N> {
    cell: StageCell,
    f: F,
    next: N,
}
linkable!(TryMap {});

impl<T, U, E, F, N> Push<T> for TryMap<F, N>
where
    F: FnMut(T) -> Result<U, E> + Send,
    E: Display,
    N: Push<U>,
{
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, cx: &Shared) {
        self.cell.count();
        match guard(|| (self.f)(item)) {
            Ok(Ok(out)) => self.next.push(out, pos, cx),
            Ok(Err(error)) => self.cell.dead(cx, pos, error.to_string()),
            Err(panic) => self.cell.dead(cx, pos, panic),
        }
    }
    forward_flush!();
}
