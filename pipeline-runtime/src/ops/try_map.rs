use std::fmt::Display;

use super::{forward_flush, linkable};
use crate::context::RunContext;
use crate::panic::guard;
use crate::push::{Pos, Push, StageCell};
use crate::stage_fns::TryMapFn;

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
    fn push(&mut self, item: T, pos: Pos, run: &RunContext) {
        match guard(|| (self.f)(item)) {
            Ok(Ok(out)) => self.next.push(out, pos, run),
            Ok(Err(error)) => self.cell.dead(run, pos, error.to_string()),
            Err(panic) => self.cell.dead(run, pos, panic),
        }
    }
    forward_flush!();
}
