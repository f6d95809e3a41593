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
//!
//! Split across workers with a `combine_per_key`, a worker's windows are emitted and written by
//! the workers owning their keys, so its own epoch being complete does not make the results of
//! its input durable: such a run's epochs are job-wide ([`Checkpoints::gate`], [`Durable`]).
//! Each worker says how far its emitted windows are durable — the job's watermark when its
//! `combine_per_key` stages released the barrier of its latest complete epoch (they emit every
//! window the job's watermark has closed before releasing a barrier) — and the job's durable
//! watermark is the least over every worker of every process. A worker's epoch is acknowledged
//! once it is complete and the job's durable watermark has passed the end of every window that
//! held its input of the epoch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
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
    /// Job-wide epochs (see [`Checkpoints::gate`]).
    gate: std::sync::OnceLock<Arc<Durable>>,
    state: Mutex<State>,
}

/// How far the windows of a split run are durable, in event time (see the module's
/// documentation): this worker's figure, published for the others, and the job's, the least
/// over every worker (kept up to date by the worker's timely coordinator).
#[derive(Debug)]
pub struct Durable {
    pub own: AtomicI64,
    pub job: AtomicI64,
}

impl Default for Durable {
    fn default() -> Self {
        Self {
            own: AtomicI64::new(i64::MIN),
            job: AtomicI64::new(i64::MIN),
        }
    }
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
    /// Job-wide epochs: per epoch, the end of the last window holding this worker's input of it
    /// (the job's durable watermark must reach it) ...
    needs: BTreeMap<u64, i64>,
    /// ... the job's watermark when every `combine_per_key` released its barrier (the least) ...
    released: BTreeMap<u64, i64>,
    /// ... the acknowledgements of complete epochs waiting for the job ...
    ready: BTreeMap<u64, Vec<Box<dyn Commit>>>,
    /// ... and this worker's new durable watermark, to publish once its dead letters are
    /// flushed ([`Checkpoints::take_own`]).
    own: Option<i64>,
}

impl Checkpoints {
    /// `terminals`: the stage ids of every sink and drop of the run.
    pub fn new(policy: CheckpointPolicy, terminals: impl IntoIterator<Item = u32>) -> Self {
        Self {
            policy,
            latest: AtomicU64::new(0),
            wanted: std::sync::atomic::AtomicBool::new(false),
            gate: std::sync::OnceLock::new(),
            state: Mutex::new(State {
                started: Instant::now(),
                read: 0,
                terminals: terminals.into_iter().map(|id| (id, Some(0))).collect(),
                durable: true,
                acks: BTreeMap::new(),
                completed: 0,
                needs: BTreeMap::new(),
                released: BTreeMap::new(),
                ready: BTreeMap::new(),
                own: None,
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

    /// Makes the epochs job-wide: for a split run whose windows are combined on other workers,
    /// where this worker's sinks being durable does not make the results of its input durable
    /// (see the module's documentation). `durable` is shared with the worker's coordinator.
    pub fn gate(&self, durable: Arc<Durable>) {
        let _ = self.gate.set(durable);
    }

    /// A `combine_per_key` received barrier `epoch` when the windows holding the input before it
    /// end at or before `horizon`.
    pub fn need(&self, epoch: u64, horizon: i64) {
        if self.gate.get().is_some() {
            let mut state = self.state();
            let need = state.needs.entry(epoch).or_insert(i64::MIN);
            *need = (*need).max(horizon);
        }
    }

    /// A `combine_per_key` released barrier `epoch` with the job's watermark at `job`: every
    /// window it owns ending at or before `job` has been emitted before the barrier.
    pub fn released(&self, epoch: u64, job: i64) {
        if self.gate.get().is_some() {
            let mut state = self.state();
            let at = state.released.entry(epoch).or_insert(i64::MAX);
            *at = (*at).min(job);
        }
    }

    /// Job-wide epochs: the acknowledgements of complete epochs whose windows the job has made
    /// durable since the last call, in epoch order.
    pub fn take_gated(&self) -> Vec<Box<dyn Commit>> {
        let Some(durable) = self.gate.get() else {
            return Vec::new();
        };
        let job = durable.job.load(Relaxed);
        let mut state = self.state();
        let mut due = Vec::new();
        while let Some(&epoch) = state.ready.keys().next() {
            if state.needs.get(&epoch).is_some_and(|&need| need > job) {
                break;
            }
            due.extend(state.ready.remove(&epoch).into_iter().flatten());
            state.needs.remove(&epoch);
        }
        due
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
        if !state.durable {
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
        if self.gate.get().is_none() {
            return due.into_values().flatten().collect();
        }
        // Job-wide: what this worker emitted before its barriers up to `complete` is durable
        // (published by `take_own`/`publish_own`); its own acknowledgements wait for the job
        // (`take_gated`).
        let later = state.released.split_off(&(complete + 1));
        let done = std::mem::replace(&mut state.released, later);
        if let Some(&job) = done.values().next_back() {
            state.own = Some(state.own.map_or(job, |own| own.max(job)));
        }
        state.ready.extend(due);
        Vec::new()
    }

    /// Job-wide epochs: this worker's durable watermark if it moved since the last call. The
    /// caller makes the dead letters written so far durable first (windows emitted here may have
    /// failed here, for another worker's input), then publishes it ([`Checkpoints::publish_own`]).
    pub fn take_own(&self) -> Option<i64> {
        self.state().own.take()
    }

    /// Publishes this worker's durable watermark to the others (through its coordinator).
    pub fn publish_own(&self, own: i64) {
        if let Some(durable) = self.gate.get() {
            durable.own.fetch_max(own, Relaxed);
        }
    }

    /// The latest complete epoch (0: none yet).
    pub fn completed(&self) -> u64 {
        self.state().completed
    }

    /// Every acknowledgement not run yet, for the end of a run that ended well.
    pub fn remaining(&self) -> Vec<Box<dyn Commit>> {
        let mut state = self.state();
        let mut all = std::mem::take(&mut state.ready);
        all.extend(std::mem::take(&mut state.acks));
        all.into_values().flatten().collect()
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
    fn job_wide_epochs_wait_for_the_jobs_durable_watermark() {
        let log = Arc::new(StdMutex::new(Vec::new()));
        let c = Checkpoints::new(CheckpointPolicy::default(), [1]);
        let durable = Arc::new(Durable::default());
        c.gate(durable.clone());
        for epoch in 1..=2 {
            c.register(epoch, Some(Box::new(Note(log.clone(), epoch))));
        }
        // Epoch 1's input is in windows ending by 100; its barrier left the combine when the
        // job's watermark was at 150.
        c.need(1, 100);
        c.released(1, 150);
        c.need(2, 200);
        run(c.reached(1, 1, true));
        assert!(
            log.lock().unwrap().is_empty(),
            "complete here, not job-wide"
        );
        assert_eq!(
            durable.own.load(Relaxed),
            i64::MIN,
            "published only after the dead letters"
        );
        c.publish_own(c.take_own().unwrap());
        assert_eq!(durable.own.load(Relaxed), 150);
        run(c.take_gated());
        assert!(
            log.lock().unwrap().is_empty(),
            "the job has made nothing durable"
        );
        durable.job.store(150, Relaxed);
        run(c.take_gated());
        assert_eq!(*log.lock().unwrap(), vec![1]);
        c.released(2, 180);
        run(c.reached(1, 2, true));
        c.publish_own(c.take_own().unwrap());
        assert_eq!(durable.own.load(Relaxed), 180);
        durable.job.store(180, Relaxed);
        run(c.take_gated());
        assert_eq!(
            *log.lock().unwrap(),
            vec![1],
            "epoch 2's windows end at 200"
        );
        durable.job.store(250, Relaxed);
        run(c.take_gated());
        assert_eq!(*log.lock().unwrap(), vec![1, 2]);
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
