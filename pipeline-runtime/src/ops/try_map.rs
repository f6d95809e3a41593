use std::fmt::Display;

use super::{forward_flush, linkable};
use crate::check::TryMapFn;
use crate::exec::Shared;
use crate::panic::guard;
use crate::push::{Pos, Push, StageCell};

/// `try_map(f)`: `Ok` goes on, `Err` goes to the dead letters with the error's text.
pub struct TryMap<F, I, N> {
    cell: StageCell,
    f: F,
    next: N,
    _input: std::marker::PhantomData<fn(I)>,
}
linkable!(TryMap {});

impl<T, F, N> Push<T> for TryMap<F, T, N>
where
    F: TryMapFn<T>,
    F::Err: Display,
    N: Push<F::Ok>,
{
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, cx: &Shared) {
        match guard(|| (self.f)(item)) {
            Ok(Ok(out)) => self.next.push(out, pos, cx),
            Ok(Err(error)) => self.cell.dead(cx, pos, error.to_string()),
            Err(panic) => self.cell.dead(cx, pos, panic),
        }
    }
    forward_flush!();
}
