use crate::context::RunContext;
use crate::panic::guard;
use crate::push::{Flow, Pos, Push, StageCell};
use crate::split::Partitioner;

/// The arms of a partition, as a cons list `(arm0, (arm1, ()))` so that each arm keeps its own
/// fused type.
pub trait Arms<T> {
    /// Pushes into arm `arm`; gives the element back if there is no such arm.
    fn push_to(&mut self, arm: usize, item: T, pos: Pos, run: &RunContext) -> Result<(), T>;
    fn flush_all(&mut self, run: &RunContext, partial: bool) -> Flow;
    fn finish_all(&mut self, run: &RunContext) -> crate::Result<()>;
    fn signal_all(&mut self, signal: crate::push::Signal, run: &RunContext);
}

impl<T> Arms<T> for () {
    #[inline(always)]
    fn push_to(&mut self, _: usize, item: T, _: Pos, _: &RunContext) -> Result<(), T> {
        Err(item)
    }
    fn flush_all(&mut self, _: &RunContext, _partial: bool) -> Flow {
        Flow::Continue
    }
    fn finish_all(&mut self, _: &RunContext) -> crate::Result<()> {
        Ok(())
    }
    fn signal_all(&mut self, _: crate::push::Signal, _: &RunContext) {}
}

impl<T, A: Push<T>, R: Arms<T>> Arms<T> for (A, R) {
    #[inline(always)]
    fn push_to(&mut self, arm: usize, item: T, pos: Pos, run: &RunContext) -> Result<(), T> {
        if arm == 0 {
            self.0.push(item, pos, run);
            Ok(())
        } else {
            self.1.push_to(arm - 1, item, pos, run)
        }
    }
    fn flush_all(&mut self, run: &RunContext, partial: bool) -> Flow {
        // Flush every arm even when one has stopped, so no arm keeps buffered elements.
        let first = self.0.flush(run, partial);
        let rest = self.1.flush_all(run, partial);
        first.and(rest)
    }
    fn finish_all(&mut self, run: &RunContext) -> crate::Result<()> {
        let first = self.0.finish(run);
        let rest = self.1.finish_all(run);
        first.and(rest)
    }
    fn signal_all(&mut self, signal: crate::push::Signal, run: &RunContext) {
        self.0.signal(signal, run);
        self.1.signal_all(signal, run);
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
    fn publish(&mut self, run: &RunContext) {
        for (arm, count) in self.arms.iter_mut().enumerate() {
            if *count != 0 {
                run.stats.add_port(self.cell.id, arm, *count);
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
    fn push(&mut self, item: T, pos: Pos, run: &RunContext) {
        match guard(|| self.p.arm(&item)) {
            Ok(arm) => {
                if let Some(count) = self.arms.get_mut(arm) {
                    *count += 1;
                }
                if self.next.push_to(arm, item, pos, run).is_err() {
                    self.cell.dead(
                        run,
                        pos,
                        format!("the partition function chose arm {arm}, but there are only {ARMS} arms (0..{ARMS})"),
                    );
                }
            }
            Err(panic) => self.cell.dead(run, pos, panic),
        }
    }

    fn flush(&mut self, run: &RunContext, partial: bool) -> Flow {
        self.publish(run);
        self.next.flush_all(run, partial)
    }

    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        self.publish(run);
        self.next.finish_all(run)
    }

    fn signal(&mut self, signal: crate::push::Signal, run: &RunContext) {
        self.next.signal_all(signal, run);
    }
}
