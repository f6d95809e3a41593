use super::{forward_flush, linkable};
use crate::context::RunContext;
use crate::panic::guard;
use crate::push::{Pos, Push, StageCell};
use crate::stage_fns::KeyFn;

/// `key_by(f)`: turns each element into `(f(&element), element)`.
pub struct KeyBy<F, I, N> {
    cell: StageCell,
    f: F,
    next: N,
    _input: std::marker::PhantomData<fn(I)>,
}
linkable!(KeyBy {});

impl<T, F, N> Push<T> for KeyBy<F, T, N>
where
    F: KeyFn<T>,
    N: Push<(F::Key, T)>,
{
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, run: &RunContext) {
        match guard(|| (self.f)(&item)) {
            Ok(key) => self.next.push((key, item), pos, run),
            Err(panic) => self.cell.dead(run, pos, panic),
        }
    }
    forward_flush!();
}
