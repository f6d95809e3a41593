use crate::exec::Shared;
use crate::panic::guard;
use crate::partition::Partitioner;
use crate::push::{Flow, Pos, Push, StageCell};

/// The arms of a partition, as a cons list `(arm0, (arm1, ()))` so that each arm keeps its own
/// fused type.
pub trait Arms<T>: Send {
    /// Pushes into arm `arm`; gives the element back if there is no such arm.
    fn push_to(&mut self, arm: usize, item: T, pos: Pos, cx: &Shared) -> Result<(), T>;
    fn flush_all(&mut self, cx: &Shared) -> Flow;
    fn finish_all(&mut self, cx: &Shared) -> crate::Result<()>;
}

impl<T> Arms<T> for () {
    #[inline(always)]
    fn push_to(&mut self, _: usize, item: T, _: Pos, _: &Shared) -> Result<(), T> {
        Err(item)
    }
    fn flush_all(&mut self, _: &Shared) -> Flow {
        Flow::Continue
    }
    fn finish_all(&mut self, _: &Shared) -> crate::Result<()> {
        Ok(())
    }
}

impl<T, A: Push<T>, R: Arms<T>> Arms<T> for (A, R) {
    #[inline(always)]
    fn push_to(&mut self, arm: usize, item: T, pos: Pos, cx: &Shared) -> Result<(), T> {
        if arm == 0 {
            self.0.push(item, pos, cx);
            Ok(())
        } else {
            self.1.push_to(arm - 1, item, pos, cx)
        }
    }
    fn flush_all(&mut self, cx: &Shared) -> Flow {
        // Flush every arm even when one has stopped, so no arm keeps buffered elements.
        let first = self.0.flush(cx);
        let rest = self.1.flush_all(cx);
        if first == Flow::Stop || rest == Flow::Stop {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
    fn finish_all(&mut self, cx: &Shared) -> crate::Result<()> {
        let first = self.0.finish(cx);
        let rest = self.1.finish_all(cx);
        first.and(rest)
    }
}

/// `partition(p)`: sends each element to exactly one arm.
pub struct Partition<P, I, N, const ARMS: usize> {
    cell: StageCell,
    p: P,
    next: N,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<P, I, const ARMS: usize> Partition<P, I, (), ARMS> {
    #[doc(hidden)]
    pub fn new(id: u32, p: P) -> Self {
        Self {
            cell: StageCell::new(id),
            p,
            next: (),
            _input: std::marker::PhantomData,
        }
    }

    pub fn then<N>(self, next: N) -> Partition<P, I, N, ARMS> {
        Partition {
            cell: self.cell,
            p: self.p,
            next,
            _input: self._input,
        }
    }
}

impl<T, P, N, const ARMS: usize> Push<T> for Partition<P, T, N, ARMS>
where
    P: Partitioner<T, ARMS>,
    N: Arms<T>,
{
    #[inline(always)]
    fn push(&mut self, item: T, pos: Pos, cx: &Shared) {
        self.cell.count();
        match guard(|| self.p.arm(&item)) {
            Ok(arm) => {
                if self.next.push_to(arm, item, pos, cx).is_err() {
                    self.cell.dead(
                        cx,
                        pos,
                        format!("the partition function chose arm {arm}, but there are only {ARMS} arms (0..{ARMS})"),
                    );
                }
            }
            Err(panic) => self.cell.dead(cx, pos, panic),
        }
    }

    fn flush(&mut self, cx: &Shared) -> Flow {
        self.cell.publish(cx);
        self.next.flush_all(cx)
    }

    fn finish(&mut self, cx: &Shared) -> crate::Result<()> {
        self.cell.publish(cx);
        self.next.finish_all(cx)
    }
}
