use std::cell::RefCell;
use std::rc::Rc;

use crate::context::RunContext;
use crate::push::{BarrierCount, Flow, Pos, Push, Signal};

/// A `merge` whose inputs all come from one segment: they push straight into the shared rest of
/// the segment, with no channel. Sound with `RefCell` because a segment runs on one thread and
/// the graph has no cycle, so no push can re-enter the junction it came through.
pub struct Junction<N> {
    shared: Rc<RefCell<JunctionState<N>>>,
}

struct JunctionState<N> {
    next: N,
    /// Inputs not finished yet; the rest of the segment finishes with the last.
    open: usize,
    /// Checkpoint alignment. The inputs run on one thread and a barrier reaches all of them
    /// before anything after it, so a barrier goes on once every open input has delivered it,
    /// with nothing to hold back.
    aligned: BarrierCount,
}

impl<N> JunctionState<N> {
    fn pass_aligned<T>(&mut self, run: &RunContext)
    where
        N: Push<T>,
    {
        while let Some(barrier) = self.aligned.next_aligned(self.open) {
            self.next.signal(Signal::Barrier(barrier), run);
        }
    }
}

impl<N> Junction<N> {
    pub fn new(next: N, inputs: usize) -> Self {
        Self {
            shared: Rc::new(RefCell::new(JunctionState {
                next,
                open: inputs,
                aligned: BarrierCount::default(),
            })),
        }
    }

    /// One input; `into` turns its elements into the merge's type (checked equal to it).
    pub fn input<U, C>(&self, into: C) -> JunctionInput<N, U, C> {
        JunctionInput {
            shared: self.shared.clone(),
            into,
            _input: std::marker::PhantomData,
        }
    }
}

pub struct JunctionInput<N, U, C> {
    shared: Rc<RefCell<JunctionState<N>>>,
    into: C,
    _input: std::marker::PhantomData<fn(U)>,
}

impl<T, U, N, C> Push<U> for JunctionInput<N, U, C>
where
    C: Fn(U) -> T,
    N: Push<T>,
{
    #[inline(always)]
    fn push(&mut self, item: U, pos: Pos, run: &RunContext) {
        let item = (self.into)(item);
        self.shared.borrow_mut().next.push(item, pos, run);
    }

    fn flush(&mut self, run: &RunContext, partial: bool) -> Flow {
        self.shared.borrow_mut().next.flush(run, partial)
    }

    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        let mut state = self.shared.borrow_mut();
        state.open = state.open.saturating_sub(1);
        if state.open == 0 {
            state.pass_aligned::<T>(run);
            state.next.finish(run)
        } else {
            state.pass_aligned::<T>(run);
            Ok(())
        }
    }

    fn signal(&mut self, signal: Signal, run: &RunContext) {
        let mut state = self.shared.borrow_mut();
        match signal {
            Signal::Barrier(barrier) => {
                state.aligned.arrive(barrier);
                state.pass_aligned::<T>(run);
            }
            other => state.next.signal(other, run),
        }
    }
}
