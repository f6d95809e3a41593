//! The batcher: cuts batches from the inputs that reach a `run_inference` stage. Pure: no
//! threads and no clock (the time is passed in), so its rules are tested directly.
//!
//! Inputs wait in groups (one per model of a keyed handler; one for an ordinary handler). A group
//! is cut into a batch when it holds `max_batch` inputs, or when its first input has waited
//! `max_wait` and it holds at least `min_batch`; when a source ends or the input closes, every
//! group is cut whatever its size. Batches are numbered in the order they are cut: the reorder
//! buffer puts results back in that order.

use std::collections::VecDeque;
use std::time::Instant;

use super::Batching;

/// A batch cut from one group, waiting for a replica.
#[derive(Debug, PartialEq)]
pub(crate) struct Formed<T> {
    pub seq: u64,
    pub group: usize,
    /// When its first input reached the stage (for the queue-wait figure).
    pub since: Instant,
    pub items: Vec<T>,
}

#[derive(Debug)]
struct Group<T> {
    items: Vec<T>,
    since: Instant,
}

#[derive(Debug)]
pub(crate) struct Batcher<T> {
    batching: Batching,
    groups: Vec<Group<T>>,
    formed: VecDeque<Formed<T>>,
    next_seq: u64,
}

impl<T> Batcher<T> {
    /// `batching` with `max_batch >= 1` and `1 <= min_batch <= max_batch`.
    pub fn new(mut batching: Batching) -> Self {
        batching.max_batch = batching.max_batch.max(1);
        batching.min_batch = batching.min_batch.clamp(1, batching.max_batch);
        Self {
            batching,
            groups: Vec::new(),
            formed: VecDeque::new(),
            next_seq: 0,
        }
    }

    pub fn batching(&self) -> Batching {
        self.batching
    }

    /// Adds an input to `group`; `arrived` is when it reached the stage. A full group is cut.
    pub fn add(&mut self, group: usize, item: T, arrived: Instant) {
        while self.groups.len() <= group {
            self.groups.push(Group {
                items: Vec::new(),
                since: arrived,
            });
        }
        let g = &mut self.groups[group];
        if g.items.is_empty() {
            g.since = arrived;
        }
        g.items.push(item);
        if g.items.len() >= self.batching.max_batch {
            self.cut(group);
        }
    }

    fn cut(&mut self, group: usize) {
        let g = &mut self.groups[group];
        if g.items.is_empty() {
            return;
        }
        let items = std::mem::replace(&mut g.items, Vec::with_capacity(self.batching.max_batch));
        self.formed.push_back(Formed {
            seq: self.next_seq,
            group,
            since: g.since,
            items,
        });
        self.next_seq += 1;
    }

    /// Cuts every group, whatever its size: a source ended, the input closed, or the stage gave up.
    pub fn cut_all(&mut self) {
        for group in 0..self.groups.len() {
            self.cut(group);
        }
    }

    /// Cuts the groups whose first input has waited `max_wait` and that hold `min_batch`.
    pub fn cut_due(&mut self, now: Instant) {
        for group in 0..self.groups.len() {
            if self.due(&self.groups[group]).is_some_and(|due| due <= now) {
                self.cut(group);
            }
        }
    }

    fn due(&self, g: &Group<T>) -> Option<Instant> {
        (!g.items.is_empty() && g.items.len() >= self.batching.min_batch)
            .then(|| g.since + self.batching.max_wait)
    }

    /// When the next group falls due, if one can.
    pub fn next_due(&self) -> Option<Instant> {
        self.groups.iter().filter_map(|g| self.due(g)).min()
    }

    /// The number the next batch cut will carry: every input added so far is in a batch numbered
    /// below it once [`Batcher::cut_all`] has run.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Batches cut and waiting for a replica.
    pub fn waiting(&self) -> usize {
        self.formed.len()
    }

    pub fn pop(&mut self) -> Option<Formed<T>> {
        self.formed.pop_front()
    }

    /// Puts a batch back at the front (its replica had gone).
    pub fn put_back(&mut self, formed: Formed<T>) {
        self.formed.push_front(formed);
    }

    /// Takes every batch waiting.
    pub fn drain(&mut self) -> VecDeque<Formed<T>> {
        std::mem::take(&mut self.formed)
    }

    /// Nothing waits: no input in a group, no batch cut.
    pub fn is_empty(&self) -> bool {
        self.formed.is_empty() && self.groups.iter().all(|g| g.items.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn batcher(max_batch: usize, min_batch: usize, max_wait_ms: u64) -> Batcher<u32> {
        Batcher::new(Batching {
            max_batch,
            min_batch,
            max_wait: Duration::from_millis(max_wait_ms),
        })
    }

    fn ms(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    fn batches(b: &mut Batcher<u32>) -> Vec<(u64, usize, Vec<u32>)> {
        b.drain()
            .into_iter()
            .map(|f| (f.seq, f.group, f.items))
            .collect()
    }

    #[test]
    fn a_full_group_is_cut_at_once() {
        let t = Instant::now();
        let mut b = batcher(3, 1, 20);
        for i in 0..7 {
            b.add(0, i, t);
        }
        assert_eq!(b.waiting(), 2);
        assert_eq!(
            batches(&mut b),
            vec![(0, 0, vec![0, 1, 2]), (1, 0, vec![3, 4, 5])]
        );
        assert!(!b.is_empty(), "the seventh input still waits");
        b.cut_all();
        assert_eq!(batches(&mut b), vec![(2, 0, vec![6])]);
        assert!(b.is_empty());
    }

    #[test]
    fn a_partial_group_is_cut_when_its_first_input_has_waited_max_wait() {
        let t = Instant::now();
        let mut b = batcher(8, 1, 20);
        b.add(0, 1, t);
        b.add(0, 2, ms(t, 15));
        assert_eq!(b.next_due(), Some(ms(t, 20)), "due by the first input");
        b.cut_due(ms(t, 19));
        assert_eq!(b.waiting(), 0);
        b.cut_due(ms(t, 20));
        assert_eq!(batches(&mut b), vec![(0, 0, vec![1, 2])]);
        assert_eq!(b.next_due(), None);
        // The next batch's clock starts at its own first input.
        b.add(0, 3, ms(t, 30));
        assert_eq!(b.next_due(), Some(ms(t, 50)));
    }

    #[test]
    fn a_group_below_min_batch_waits_past_max_wait_until_it_fills() {
        let t = Instant::now();
        let mut b = batcher(8, 3, 20);
        b.add(0, 1, t);
        b.add(0, 2, t);
        assert_eq!(b.next_due(), None, "two of three: not due at any time");
        b.cut_due(ms(t, 1000));
        assert_eq!(b.waiting(), 0);
        b.add(0, 3, ms(t, 1000));
        // Due since `max_wait` after the first input: cut at the next look.
        assert_eq!(b.next_due(), Some(ms(t, 20)));
        b.cut_due(ms(t, 1000));
        assert_eq!(batches(&mut b), vec![(0, 0, vec![1, 2, 3])]);
    }

    #[test]
    fn the_end_of_input_cuts_what_is_below_min_batch() {
        let t = Instant::now();
        let mut b = batcher(8, 3, 20);
        b.add(0, 1, t);
        b.cut_all();
        assert_eq!(batches(&mut b), vec![(0, 0, vec![1])]);
    }

    #[test]
    fn groups_fill_and_fall_due_apart_and_batches_are_numbered_in_cut_order() {
        let t = Instant::now();
        let mut b = batcher(2, 1, 20);
        b.add(1, 10, t);
        b.add(0, 1, ms(t, 5));
        b.add(1, 11, ms(t, 6)); // group 1 full: batch 0
        b.add(0, 2, ms(t, 7)); // group 0 full: batch 1
        b.add(2, 20, ms(t, 8));
        b.add(0, 3, ms(t, 9));
        assert_eq!(
            b.next_due(),
            Some(ms(t, 28)),
            "group 2's first input is the oldest"
        );
        b.cut_due(ms(t, 28));
        b.cut_due(ms(t, 29));
        assert_eq!(
            batches(&mut b),
            vec![
                (0, 1, vec![10, 11]),
                (1, 0, vec![1, 2]),
                (2, 2, vec![20]),
                (3, 0, vec![3])
            ]
        );
        assert_eq!(b.next_seq(), 4);
    }

    #[test]
    fn a_batch_put_back_goes_first() {
        let t = Instant::now();
        let mut b = batcher(1, 1, 20);
        b.add(0, 1, t);
        b.add(0, 2, t);
        let first = b.pop().unwrap();
        b.put_back(first);
        assert_eq!(b.pop().unwrap().items, vec![1]);
        assert_eq!(b.pop().unwrap().items, vec![2]);
        assert_eq!(b.pop(), None);
    }

    #[test]
    fn batch_sizes_out_of_range_are_made_sane() {
        let b = batcher(0, 5, 20);
        assert_eq!(b.batching().max_batch, 1);
        assert_eq!(b.batching().min_batch, 1);
    }
}
