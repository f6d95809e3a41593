use super::{forward_flush, linkable};
use crate::exec::Shared;
use crate::panic::guard;
use crate::push::{Pos, Push, StageCell};

/// `key_by(f)`: turns each element into `(f(&element), element)`.
pub struct KeyBy<F, N> {
    cell: StageCell,
    f: F,
    next: N,
}
linkable!(KeyBy {});

impl<T, K, F, N> Push<T> for KeyBy<F, N>
where
    F: FnMut(&T) -> K + Send,
    N: Push<(K, T)>,
{
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, cx: &Shared) {
        self.cell.count();
        match guard(|| (self.f)(&item)) {
            Ok(key) => self.next.push((key, item), pos, cx),
            Err(panic) => self.cell.dead(cx, pos, panic),
        }
    }
    forward_flush!();
}
