use super::{forward_flush, linkable};
use crate::check::KeyFn;
use crate::exec::Shared;
use crate::panic::guard;
use crate::push::{Pos, Push, StageCell};

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
    fn push(&mut self, item: T, pos: Pos, cx: &Shared) {
        match guard(|| (self.f)(&item)) {
            Ok(key) => self.next.push((key, item), pos, cx),
            Err(panic) => self.cell.dead(cx, pos, panic),
        }
    }
    forward_flush!();
}
