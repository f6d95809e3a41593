use crate::exec::Shared;
use crate::push::{Flow, Pos, Push, StageCell};

/// `drop()`: the end of a chain whose elements are discarded on purpose (counted as dropped).
pub struct Discard<I> {
    cell: StageCell,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<I> Discard<I> {
    pub fn new(id: u32) -> Self {
        Self {
            cell: StageCell::new(id),
            _input: std::marker::PhantomData,
        }
    }
}

impl<T: Send> Push<T> for Discard<T> {
    #[inline(always)]
    fn push(&mut self, _: T, _: Pos, _: &Shared) {
        self.cell.count();
    }

    fn flush(&mut self, cx: &Shared, _partial: bool) -> Flow {
        self.cell.publish(cx);
        Flow::Continue
    }

    fn finish(&mut self, cx: &Shared) -> crate::Result<()> {
        self.cell.publish(cx);
        Ok(())
    }

    fn source_ended(&mut self, _: crate::push::Ended, _: &Shared) {}
}
