use crate::exec::Shared;
use crate::push::{Flow, Pos, Push, StageCell};

/// `merge(a, b, ..)`: the head of the segment reading the merge channel; it counts what arrives.
pub struct Merge<N> {
    cell: StageCell,
    next: N,
}

impl Merge<()> {
    pub fn new(id: u32) -> Self {
        Self {
            cell: StageCell::new(id),
            next: (),
        }
    }

    pub fn then<N>(self, next: N) -> Merge<N> {
        Merge {
            cell: self.cell,
            next,
        }
    }
}

impl<T, N: Push<T>> Push<T> for Merge<N> {
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, cx: &Shared) {
        self.cell.count();
        self.next.push(item, pos, cx);
    }

    fn flush(&mut self, cx: &Shared, partial: bool) -> Flow {
        self.cell.publish(cx);
        self.next.flush(cx, partial)
    }

    fn finish(&mut self, cx: &Shared) -> crate::Result<()> {
        self.cell.publish(cx);
        self.next.finish(cx)
    }

    fn source_ended(&mut self, ended: crate::push::Ended, cx: &Shared) {
        self.next.source_ended(ended, cx);
    }
}
