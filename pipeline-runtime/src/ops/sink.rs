use crate::context::RunContext;
use crate::io::Sink;
use crate::push::{Flow, Pos, Push, StageCell};

/// `write(sink)`: the end of a chain. A failed write sends the element to the dead letters.
pub struct SinkOp<S, I> {
    cell: StageCell,
    sink: S,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<S, I> SinkOp<S, I> {
    pub fn new(id: u32, sink: S) -> Self {
        Self {
            cell: StageCell::new(id),
            sink,
            _input: std::marker::PhantomData,
        }
    }
}

impl<T, S: Sink<T>> Push<T> for SinkOp<S, T> {
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, run: &RunContext) {
        self.cell.count();
        if let Err(error) = self.sink.write(item) {
            self.cell.dead(
                run,
                pos,
                format!("writing to {} failed: {error}", self.sink.describe()),
            );
        }
    }

    fn flush(&mut self, run: &RunContext, _partial: bool) -> Flow {
        self.cell.publish(run);
        Flow::Continue
    }

    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        self.cell.publish(run);
        let commit = self.sink.finish()?;
        run.add_commit(commit);
        Ok(())
    }

    fn source_ended(&mut self, _: crate::push::Ended, _: &RunContext) {}
}
