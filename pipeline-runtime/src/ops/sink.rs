use crate::context::RunContext;
use crate::io::Sink;
use crate::push::{Flow, Pos, Push, Signal, StageCell};

/// `write(sink)`: the end of a chain. A failed write sends the element to the dead letters.
pub struct SinkOp<S, I> {
    cell: StageCell,
    sink: S,
    /// Whether positions are told whole before `write_at` (see `RunContext::position`): in a
    /// split run, for a sink that uses them.
    positions: bool,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<S, I> SinkOp<S, I> {
    pub fn new(id: u32, sink: S, positions: bool) -> Self {
        Self {
            cell: StageCell::new(id),
            positions,
            sink,
            _input: std::marker::PhantomData,
        }
    }
}

impl<T, S: Sink<T>> Push<T> for SinkOp<S, T> {
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, run: &RunContext) {
        self.cell.count();
        let at = if self.positions {
            run.position(pos)
        } else {
            pos
        };
        if let Err(error) = self.sink.write_at(item, at) {
            self.cell.dead(
                run,
                pos,
                format!("writing to {} failed: {error}", self.sink.describe()),
            );
        }
    }

    fn flush(&mut self, run: &RunContext, partial: bool) -> Flow {
        self.cell.publish(run);
        // Before the segment waits: a sink that buffers (Redis) sends what it holds, and one that
        // can no longer write stops the run now rather than when the input ends, which an
        // unbounded source never does.
        if partial {
            if let Err(error) = self.sink.flush() {
                run.fail(error);
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        self.cell.publish(run);
        let commit = self.sink.finish()?;
        run.add_commit(commit);
        run.terminal_finished(self.cell.id);
        Ok(())
    }

    /// At a barrier: what was written before it is made durable, and the checkpoint told.
    fn signal(&mut self, signal: Signal, run: &RunContext) {
        if let Signal::Barrier(barrier) = signal {
            match self.sink.checkpoint() {
                Ok(durable) => run.checkpoint_reached(self.cell.id, barrier.epoch, durable),
                Err(error) => run.fail(error),
            }
        }
    }
}
