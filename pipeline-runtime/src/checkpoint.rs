//! Checkpoints: numbered epochs carried with the data.
//!
//! Every `--checkpoint-interval` (or every `--checkpoint-every` records), the run starts a new
//! epoch: each source, between two chunks, asks its input for what acknowledges everything it
//! read so far ([`crate::io::Source::checkpoint`]) and sends a barrier down its chain, in order
//! with its elements (`push::Signal::Barrier`). Stages pass the barrier on once
//! everything before it has gone on — a merge once all its inputs delivered it, a model stage
//! after the results of every input before it, `combine_per_key` once every window open when it
//! arrived has been emitted. A sink receiving barrier *n* makes what it wrote durable
//! ([`crate::io::Sink::checkpoint`]) and reports it here. When every sink and drop of the run has
//! reported *n* (or has finished), epoch *n* is complete: the dead letters are flushed and the
//! sources' acknowledgements of epochs up to *n* run, in order.
//!
//! So after a crash a restarted run resumes from the last complete epoch: what was
//! acknowledged had reached every sink durably, and what was not is read again. Windows are
//! rebuilt by that replay (no state is saved): `combine_per_key` holds a barrier back until the
//! windows open when it arrived are emitted, so no input of an open window is acknowledged.
//!
//! A sink that can only make its output durable at the end of the run (files, committed by
//! rename) says so, and then nothing is acknowledged before the run has ended well.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::io::Commit;

/// When epochs end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Every this long (`--checkpoint-interval`, default 1 s); `None`: not by time.
    pub interval: Option<Duration>,
    /// Every this many records read by the run's sources (`--checkpoint-every`); `None`: not by
    /// count.
    pub every: Option<u64>,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            interval: Some(Duration::from_secs(1)),
            every: None,
        }
    }
}

/// The epoch that holds what is read after the last barrier, acknowledged at the end of the run.
pub const FINAL_EPOCH: u64 = u64::MAX;

/// The checkpoint coordinator of one run.
pub struct Checkpoints {
    policy: CheckpointPolicy,
    /// The latest epoch started; sources send barriers up to it.
    latest: AtomicU64,
    /// Whether some source acknowledges its input: without one, no epoch starts.
    wanted: std::sync::atomic::AtomicBool,
    /// Acknowledge nothing before the end of the run (see [`Checkpoints::hold`]).
    held: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
}

struct State {
    started: Instant,
    read: u64,
    /// The latest epoch each terminal (sink or drop) has reached, by stage id; `None` once it
    /// has finished (it counts as having reached every epoch).
    terminals: BTreeMap<u32, Option<u64>>,
    /// Whether every terminal so far made its output durable at each barrier.
    durable: bool,
    /// Acknowledgements of each epoch's input, run once it is complete.
    acks: BTreeMap<u64, Vec<Box<dyn Commit>>>,
    completed: u64,
}

impl Checkpoints {
    /// `terminals`: the stage ids of every sink and drop of the run.
    pub fn new(policy: CheckpointPolicy, terminals: impl IntoIterator<Item = u32>) -> Self {
        Self {
            policy,
            latest: AtomicU64::new(0),
            wanted: std::sync::atomic::AtomicBool::new(false),
            held: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(State {
                started: Instant::now(),
                read: 0,
                terminals: terminals.into_iter().map(|id| (id, Some(0))).collect(),
                durable: true,
                acks: BTreeMap::new(),
                completed: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A source of the run acknowledges its input (`Source::acknowledges`): epochs start.
    pub fn want(&self) {
        self.wanted.store(true, Relaxed);
    }

    /// Called by a source between chunks with the records it read since the last call: the
    /// latest epoch started, after starting a new one if it is due.
    pub fn due(&self, read: u64) -> u64 {
        if !self.wanted.load(Relaxed) {
            return 0;
        }
        let mut state = self.state();
        state.read += read;
        let by_time = self
            .policy
            .interval
            .is_some_and(|i| state.started.elapsed() >= i);
        let by_count = self.policy.every.is_some_and(|n| state.read >= n);
        if by_time || by_count {
            state.started = Instant::now();
            state.read = 0;
            return self.latest.fetch_add(1, Relaxed) + 1;
        }
        self.latest.load(Relaxed)
    }

    /// No epoch's input is acknowledged before the end of the run ([`Checkpoints::remaining`]):
    /// for a split run whose windows are combined on other workers, where this worker's sinks
    /// being durable does not make the results of its input durable.
    pub fn hold(&self) {
        self.held.store(true, Relaxed);
    }

    /// Registers what acknowledges a source's input read before its barrier of `epoch`.
    pub fn register(&self, epoch: u64, ack: Option<Box<dyn Commit>>) {
        if let Some(ack) = ack {
            self.state().acks.entry(epoch).or_default().push(ack);
        }
    }

    /// A terminal has received barrier `epoch`; `durable`: whether what it wrote before it is
    /// durable now. Returns the acknowledgements that became due, in epoch order.
    pub fn reached(&self, terminal: u32, epoch: u64, durable: bool) -> Vec<Box<dyn Commit>> {
        let mut state = self.state();
        if let Some(Some(at)) = state.terminals.get_mut(&terminal) {
            *at = (*at).max(epoch);
        }
        state.durable &= durable;
        self.take_due(&mut state)
    }

    /// A terminal has finished: it receives no more barriers.
    pub fn finished(&self, terminal: u32) -> Vec<Box<dyn Commit>> {
        let mut state = self.state();
        if let Some(at) = state.terminals.get_mut(&terminal) {
            *at = None;
        }
        self.take_due(&mut state)
    }

    fn take_due(&self, state: &mut State) -> Vec<Box<dyn Commit>> {
        if !state.durable || self.held.load(Relaxed) {
            return Vec::new();
        }
        // The final epoch is acknowledged only after the run's commit.
        let complete = state
            .terminals
            .values()
            .map(|at| at.unwrap_or(FINAL_EPOCH - 1))
            .min()
            .unwrap_or(FINAL_EPOCH - 1);
        if complete <= state.completed {
            return Vec::new();
        }
        state.completed = complete;
        let later = state.acks.split_off(&(complete + 1));
        let due = std::mem::replace(&mut state.acks, later);
        due.into_values().flatten().collect()
    }

    /// The latest complete epoch (0: none yet).
    pub fn completed(&self) -> u64 {
        self.state().completed
    }

    /// Every acknowledgement not run yet, for the end of a run that ended well.
    pub fn remaining(&self) -> Vec<Box<dyn Commit>> {
        std::mem::take(&mut self.state().acks)
            .into_values()
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex as StdMutex};

    struct Note(Arc<StdMutex<Vec<u64>>>, u64);
    impl Commit for Note {
        fn commit(self: Box<Self>) -> crate::Result<()> {
            self.0.lock().unwrap().push(self.1);
            Ok(())
        }
    }

    fn run(acks: Vec<Box<dyn Commit>>) {
        for ack in acks {
            ack.commit().unwrap();
        }
    }

    #[test]
    fn an_epoch_completes_when_every_terminal_has_reached_it_or_finished() {
        let log = Arc::new(StdMutex::new(Vec::new()));
        let c = Checkpoints::new(CheckpointPolicy::default(), [3, 5]);
        for epoch in 1..=3 {
            c.register(epoch, Some(Box::new(Note(log.clone(), epoch))));
        }
        c.register(FINAL_EPOCH, Some(Box::new(Note(log.clone(), 99))));
        run(c.reached(3, 2, true));
        assert!(
            log.lock().unwrap().is_empty(),
            "terminal 5 has not reached 1"
        );
        run(c.reached(5, 1, true));
        assert_eq!(*log.lock().unwrap(), vec![1]);
        run(c.finished(5));
        assert_eq!(*log.lock().unwrap(), vec![1, 2]);
        run(c.finished(3));
        assert_eq!(
            *log.lock().unwrap(),
            vec![1, 2, 3],
            "the final epoch waits for the commit"
        );
        run(c.remaining());
        assert_eq!(*log.lock().unwrap(), vec![1, 2, 3, 99]);
    }

    #[test]
    fn a_sink_that_is_not_durable_defers_every_acknowledgement_to_the_end() {
        let log = Arc::new(StdMutex::new(Vec::new()));
        let c = Checkpoints::new(CheckpointPolicy::default(), [1, 2]);
        c.register(1, Some(Box::new(Note(log.clone(), 1))));
        run(c.reached(1, 1, false));
        run(c.reached(2, 1, true));
        run(c.finished(1));
        run(c.finished(2));
        assert!(log.lock().unwrap().is_empty());
        run(c.remaining());
        assert_eq!(*log.lock().unwrap(), vec![1]);
    }

    #[test]
    fn epochs_start_by_count() {
        let c = Checkpoints::new(
            CheckpointPolicy {
                interval: None,
                every: Some(100),
            },
            [1],
        );
        assert_eq!(c.due(500), 0, "no source acknowledges: no epochs");
        c.want();
        assert_eq!(c.due(60), 0);
        assert_eq!(c.due(60), 1);
        assert_eq!(c.due(10), 1);
        assert_eq!(c.due(250), 2);
    }
}
