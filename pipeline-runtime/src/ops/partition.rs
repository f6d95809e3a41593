use crate::exec::Shared;
use crate::panic::guard;
use crate::partition::Partitioner;
use crate::push::{Flow, Pos, Push, StageCell};

/// The arms of a partition, as a cons list `(arm0, (arm1, ()))` so that each arm keeps its own
/// fused type.
pub trait Arms<T> {
    /// Pushes into arm `arm`; gives the element back if there is no such arm.
    fn push_to(&mut self, arm: usize, item: T, pos: Pos, cx: &Shared) -> Result<(), T>;
    fn flush_all(&mut self, cx: &Shared, partial: bool) -> Flow;
    fn finish_all(&mut self, cx: &Shared) -> crate::Result<()>;
    fn source_ended_all(&mut self, ended: crate::push::Ended, cx: &Shared);
}

impl<T> Arms<T> for () {
    #[inline(always)]
    fn push_to(&mut self, _: usize, item: T, _: Pos, _: &Shared) -> Result<(), T> {
        Err(item)
    }
    fn flush_all(&mut self, _: &Shared, _partial: bool) -> Flow {
        Flow::Continue
    }
    fn finish_all(&mut self, _: &Shared) -> crate::Result<()> {
        Ok(())
    }
    fn source_ended_all(&mut self, _: crate::push::Ended, _: &Shared) {}
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
    fn flush_all(&mut self, cx: &Shared, partial: bool) -> Flow {
        // Flush every arm even when one has stopped, so no arm keeps buffered elements.
        let first = self.0.flush(cx, partial);
        let rest = self.1.flush_all(cx, partial);
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
    fn source_ended_all(&mut self, ended: crate::push::Ended, cx: &Shared) {
        self.0.source_ended(ended, cx);
        self.1.source_ended_all(ended, cx);
    }
}

/// `partition(p)`: sends each element to exactly one arm.
pub struct Partition<P, I, N, const ARMS: usize> {
    cell: StageCell,
    /// Elements sent to each arm since the last flush.
    arms: [u64; ARMS],
    p: P,
    next: N,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<P, I, const ARMS: usize> Partition<P, I, (), ARMS> {
    #[doc(hidden)]
    pub fn new(id: u32, p: P) -> Self {
        Self {
            cell: StageCell::new(id),
            arms: [0; ARMS],
            p,
            next: (),
            _input: std::marker::PhantomData,
        }
    }

    pub fn then<N>(self, next: N) -> Partition<P, I, N, ARMS> {
        Partition {
            cell: self.cell,
            arms: self.arms,
            p: self.p,
            next,
            _input: self._input,
        }
    }
}

impl<P, I, N, const ARMS: usize> Partition<P, I, N, ARMS> {
    fn publish(&mut self, cx: &Shared) {
        for (arm, count) in self.arms.iter_mut().enumerate() {
            if *count != 0 {
                cx.stats.add_port(self.cell.id, arm, *count);
                *count = 0;
            }
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
        match guard(|| self.p.arm(&item)) {
            Ok(arm) => {
                if let Some(count) = self.arms.get_mut(arm) {
                    *count += 1;
                }
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

    fn flush(&mut self, cx: &Shared, partial: bool) -> Flow {
        self.publish(cx);
        self.next.flush_all(cx, partial)
    }

    fn finish(&mut self, cx: &Shared) -> crate::Result<()> {
        self.publish(cx);
        self.next.finish_all(cx)
    }

    fn source_ended(&mut self, ended: crate::push::Ended, cx: &Shared) {
        self.next.source_ended_all(ended, cx);
    }
}
