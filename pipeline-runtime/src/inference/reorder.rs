//! The reorder buffer: replicas finish batches in any order; results leave the stage in the order
//! the batches were cut, and an end-of-source notice leaves after the results of every input
//! that came before it. Pure: no threads, no clock.

use std::collections::{BTreeMap, VecDeque};

use crate::push::Signal;

/// What leaves the stage next.
#[derive(Debug, PartialEq)]
pub(crate) enum Release<R> {
    Batch(Vec<R>),
    Signal(Signal),
}

#[derive(Debug)]
pub(crate) struct Reorder<R> {
    /// Batches that finished, waiting for the earlier ones.
    finished: BTreeMap<u64, Vec<R>>,
    next_out: u64,
    /// Signals (end-of-source notices, barriers), each to leave once the batches numbered below
    /// `.0` have.
    ended: VecDeque<(u64, Signal)>,
}

impl<R> Default for Reorder<R> {
    fn default() -> Self {
        Self {
            finished: BTreeMap::new(),
            next_out: 0,
            ended: VecDeque::new(),
        }
    }
}

impl<R> Reorder<R> {
    /// Batch `seq` has finished; `results` is empty when its elements were dead-lettered.
    pub fn complete(&mut self, seq: u64, results: Vec<R>) {
        self.finished.insert(seq, results);
    }

    /// A signal (a source has ended, a barrier) came after every input in batches numbered
    /// below `before`.
    pub fn signal(&mut self, before: u64, signal: Signal) {
        self.ended.push_back((before, signal));
    }

    /// Whether nothing waits to leave (no finished batch, no signal).
    pub fn is_empty(&self) -> bool {
        self.finished.is_empty() && self.ended.is_empty()
    }

    /// The next thing that may leave, in order; `None` while the next batch is still running.
    pub fn next(&mut self) -> Option<Release<R>> {
        loop {
            if self
                .ended
                .front()
                .is_some_and(|&(before, _)| before <= self.next_out)
            {
                let (_, signal) = self.ended.pop_front()?;
                return Some(Release::Signal(signal));
            }
            let results = self.finished.remove(&self.next_out)?;
            self.next_out += 1;
            if !results.is_empty() {
                return Some(Release::Batch(results));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::Ended;

    fn ended(source: u32) -> Signal {
        Signal::Ended(Ended {
            source,
            watermark: None,
        })
    }

    fn drain(r: &mut Reorder<u32>) -> Vec<Release<u32>> {
        std::iter::from_fn(|| r.next()).collect()
    }

    #[test]
    fn batches_finished_out_of_order_leave_in_order() {
        let mut r = Reorder::default();
        r.complete(2, vec![20, 21]);
        r.complete(1, vec![10]);
        assert_eq!(drain(&mut r), vec![], "batch 0 is still running");
        r.complete(0, vec![0]);
        assert_eq!(
            drain(&mut r),
            vec![
                Release::Batch(vec![0]),
                Release::Batch(vec![10]),
                Release::Batch(vec![20, 21])
            ]
        );
        r.complete(3, vec![30]);
        assert_eq!(drain(&mut r), vec![Release::Batch(vec![30])]);
    }

    #[test]
    fn a_failed_batch_leaves_nothing_but_does_not_hold_up_the_next() {
        let mut r = Reorder::default();
        r.complete(1, vec![10]);
        r.complete(0, vec![]);
        assert_eq!(drain(&mut r), vec![Release::Batch(vec![10])]);
    }

    #[test]
    fn the_end_of_a_source_waits_for_every_batch_before_it() {
        let mut r = Reorder::default();
        // The source's inputs are in batches 0 and 1; batch 2 was cut after its notice.
        r.signal(2, ended(7));
        r.complete(2, vec![20]);
        r.complete(0, vec![0]);
        assert_eq!(drain(&mut r), vec![Release::Batch(vec![0])]);
        r.complete(1, vec![10]);
        assert_eq!(
            drain(&mut r),
            vec![
                Release::Batch(vec![10]),
                Release::Signal(ended(7)),
                Release::Batch(vec![20])
            ]
        );
    }

    #[test]
    fn an_end_with_nothing_before_it_leaves_at_once_and_notices_keep_their_order() {
        let mut r = Reorder::default();
        r.signal(0, ended(1));
        r.signal(0, ended(2));
        assert_eq!(
            drain(&mut r),
            vec![Release::Signal(ended(1)), Release::Signal(ended(2))]
        );
    }
}
