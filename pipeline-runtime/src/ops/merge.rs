use crate::context::RunContext;
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
    fn push(&mut self, item: T, pos: Pos, run: &RunContext) {
        self.cell.count();
        self.next.push(item, pos, run);
    }

    fn flush(&mut self, run: &RunContext, partial: bool) -> Flow {
        self.cell.publish(run);
        self.next.flush(run, partial)
    }

    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        self.cell.publish(run);
        self.next.finish(run)
    }

    fn signal(&mut self, signal: crate::push::Signal, run: &RunContext) {
        self.next.signal(signal, run);
    }
}
