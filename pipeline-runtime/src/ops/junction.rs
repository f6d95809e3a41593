use std::cell::RefCell;
use std::rc::Rc;

use crate::context::RunContext;
use crate::push::{Flow, Pos, Push};

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
}

impl<N> Junction<N> {
    pub fn new(next: N, inputs: usize) -> Self {
        Self {
            shared: Rc::new(RefCell::new(JunctionState { next, open: inputs })),
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
            state.next.finish(run)
        } else {
            Ok(())
        }
    }

    fn source_ended(&mut self, ended: crate::push::Ended, run: &RunContext) {
        self.shared.borrow_mut().next.source_ended(ended, run);
    }
}
