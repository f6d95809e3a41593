use super::{forward_flush, linkable};
use crate::context::RunContext;
use crate::panic::guard;
use crate::push::{Pos, Push, StageCell};
use crate::stage_fns::InspectFn;

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
    fn push(&mut self, item: T, pos: Pos, run: &RunContext) {
        match guard(|| (self.f)(&item)) {
            Ok(()) => self.next.push(item, pos, run),
            Err(panic) => self.cell.dead(run, pos, panic),
        }
    }
    forward_flush!();
}
