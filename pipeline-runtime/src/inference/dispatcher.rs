//! How a `run_inference` stage runs: the dispatcher loop that joins the front, the batcher, the
//! replicas, the reorder buffer and hot swap.
//!
//! ```text
//!  segment in front          dispatcher thread                 replica threads
//!  ─────────────────         ─────────────────────────         ───────────────
//!  Front: prepare each  ──▶  cut batches (max_batch, or    ──▶  replica 0: infer
//!  input, send pieces        max_wait once min_batch are        replica 1: infer
//!  (bounded channel)         there), route each to the     ◀──  ...
//!                            least busy idle replica,
//!                            time batches out, hot-swap,
//!                            put results back in order    ──▶  segment after the stage
//! ```
//!
//! A lone replica without a timeout has no thread of its own: the dispatcher runs its batches
//! itself (`Runner::Inline`), two hand-offs per batch fewer.
//!
//! Backpressure: the dispatcher reads no more input while as many batches wait as there are
//! replicas, so the bounded channel from the front fills and the segment in front waits.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel as cb;

use super::batcher::{Batcher, Formed};
use super::front::{lock_metrics, lock_pending, Intake, Item, Msg, Piece};
use super::hot_swap::Watch;
use super::reorder::{Release, Reorder};
use super::replica::{ids, infer, Event, Job, Replica, Runner, Spawn, State};
use super::{DeviceRequest, ModelHandler, PredictionResult, SharedHandler};
use crate::context::{Pos, RunContext};
use crate::metrics::{InferenceMetrics, MetricsCell};
use crate::ops::Sender;
use crate::panic::guard;
use crate::push::Signal;

pub(super) type Out<H> =
    PredictionResult<<H as ModelHandler>::Input, <H as ModelHandler>::Inference>;

/// A batch on a replica.
pub(super) struct InFlight<H: SharedHandler> {
    replica: usize,
    examples: Vec<(Pos, H::Input)>,
    dispatched: Instant,
    model_id: Arc<str>,
}

/// The largest group index a handler may use (a keyed handler uses one per key).
const MAX_GROUPS: usize = 1 << 16;

/// The thread between the front and the replicas: see the module's documentation.
pub(crate) struct Dispatcher<H: SharedHandler> {
    pub(super) id: u32,
    pub(super) handler: Arc<H>,
    pub(super) name: Arc<str>,
    pub(super) device: DeviceRequest,
    pub(super) timeout: Option<Duration>,
    pub(super) intake: Intake<H>,
    pub(super) batcher: Batcher<Item<H>>,
    pub(super) events_tx: cb::Sender<Event<H>>,
    pub(super) events: cb::Receiver<Event<H>>,
    pub(super) replicas: Vec<Replica<H>>,
    pub(super) inflight: HashMap<u64, InFlight<H>>,
    pub(super) reorder: Reorder<(Pos, Out<H>)>,
    pub(super) out: Option<Sender<Out<H>>>,
    pub(super) metrics: MetricsCell,
    pub(super) watch: Option<Watch>,
    /// Set when no replica is left: every element is dead-lettered with this reason.
    pub(super) fatal: Option<String>,
}

impl<H: SharedHandler> Dispatcher<H> {
    pub(crate) fn run(mut self, run: &RunContext) -> crate::Result<()> {
        crate::panic::quiet_thread();
        loop {
            self.dispatch(run);
            self.emit();
            let idle =
                self.intake.input.is_none() && self.batcher.is_empty() && self.inflight.is_empty();
            if idle {
                break;
            }
            let now = Instant::now();
            let wait = self.next_wake().map_or(Duration::from_secs(3600), |at| {
                at.saturating_duration_since(now)
            });
            let live = self
                .replicas
                .iter()
                .filter(|r| r.state != State::Gone)
                .count();
            let input = match &self.intake.input {
                Some(input) if self.batcher.waiting() < live.max(1) => input.clone(),
                _ => cb::never(),
            };
            let events = self.events.clone();
            cb::select! {
                recv(input) -> msg => {
                    if msg.is_ok() {
                        self.intake.gauge.sample(input.len());
                    }
                    match msg {
                        Ok(Msg::Piece(piece)) => {
                            self.intake.received_piece();
                            self.accept(piece, run);
                        }
                        Ok(Msg::Signal(signal)) => self.signal(signal),
                        Ok(Msg::Started(since)) => {
                            self.intake.due_at(since + self.batcher.batching().max_wait);
                        }
                        Err(_) => self.close_input(run),
                    }
                },
                recv(events) -> event => {
                    if let Ok(event) = event {
                        self.on_event(event, run);
                    }
                }
                default(wait) => {}
            }
            self.on_timers(run);
        }
        // Dropping the replicas' senders ends their threads.
        Ok(())
    }

    fn metrics(&self) -> MutexGuard<'_, InferenceMetrics> {
        lock_metrics(&self.metrics)
    }

    fn next_wake(&self) -> Option<Instant> {
        let timeouts = self
            .timeout
            .into_iter()
            .flat_map(|t| self.inflight.values().map(move |f| f.dispatched + t));
        let watch = self.watch.as_ref().map(Watch::next_look);
        self.batcher
            .next_due()
            .into_iter()
            .chain(timeouts)
            .chain(watch)
            .chain(self.intake.due)
            .min()
    }

    fn accept(&mut self, piece: Piece<H>, run: &RunContext) {
        for (pos, input, prepared) in piece.items {
            if let Some(why) = &self.fatal {
                run.dead_letter(self.id, pos, why.clone(), None);
                continue;
            }
            let group = match guard(|| self.handler.group(&prepared)) {
                Ok(group) if group < MAX_GROUPS => group,
                Ok(group) => {
                    let why = format!("the handler put this input in group {group}, beyond the limit of {MAX_GROUPS}");
                    run.dead_letter(self.id, pos, why, None);
                    continue;
                }
                Err(panic) => {
                    run.dead_letter(self.id, pos, panic, None);
                    continue;
                }
            };
            self.batcher.add(group, (pos, input, prepared), piece.since);
        }
    }

    /// A signal (a source has ended, a checkpoint barrier). Every input before it came before
    /// it, so cutting every group puts them all in batches numbered below `next_seq`: the signal
    /// leaves once those have, and so after all their results.
    fn signal(&mut self, signal: Signal) {
        self.batcher.cut_all();
        self.reorder.signal(self.batcher.next_seq(), signal);
    }

    /// The input has ended: every partial batch runs now, whatever its size.
    fn close_input(&mut self, run: &RunContext) {
        self.intake.input = None;
        self.intake.due = None;
        let piece = lock_pending(&self.intake.pending).take();
        if let Some(piece) = piece {
            self.accept(piece, run);
        }
        self.batcher.cut_all();
    }

    fn on_timers(&mut self, run: &RunContext) {
        let now = Instant::now();
        let max_wait = self.batcher.batching().max_wait;
        if let Some(piece) = self.intake.take_due(now, max_wait) {
            self.accept(piece, run);
        }
        self.batcher.cut_due(now);
        if let Some(limit) = self.timeout {
            let late: Vec<u64> = self
                .inflight
                .iter()
                .filter(|(_, f)| f.dispatched + limit <= now)
                .map(|(&seq, _)| seq)
                .collect();
            for seq in late {
                self.time_out(seq, limit, run);
            }
        }
        if let Some(watch) = &mut self.watch {
            let count = self
                .replicas
                .iter()
                .filter(|r| matches!(r.state, State::Idle | State::Busy))
                .count()
                .max(1);
            watch.poll(
                now,
                &self.name,
                count,
                &self.handler,
                self.device,
                &self.events_tx,
            );
        }
    }

    /// Hands waiting batches to idle replicas, the least busy first.
    fn dispatch(&mut self, run: &RunContext) {
        if let Some(why) = &self.fatal {
            for formed in self.batcher.drain() {
                for (pos, _, _) in formed.items {
                    run.dead_letter(self.id, pos, why.clone(), None);
                }
                self.reorder.complete(formed.seq, Vec::new());
            }
            return;
        }
        while self.batcher.waiting() > 0 {
            let Some(r) = self
                .replicas
                .iter()
                .enumerate()
                .filter(|(_, r)| r.state == State::Idle)
                .min_by_key(|(_, r)| r.busy)
                .map(|(at, _)| at)
            else {
                return;
            };
            let formed = self.batcher.pop().expect("a batch waits");
            let size = formed.items.len();
            let mut examples = Vec::with_capacity(size);
            let mut batch = Vec::with_capacity(size);
            for (pos, input, prepared) in formed.items {
                examples.push((pos, input));
                batch.push(prepared);
            }
            let replica = &mut self.replicas[r];
            let swap = replica.next.take().map(|(model, ids)| {
                replica.ids = ids;
                model
            });
            let model_id = replica
                .ids
                .get(formed.group)
                .or(replica.ids.first())
                .cloned()
                .unwrap_or_else(|| Arc::from(&*self.name));
            let job = Job {
                seq: formed.seq,
                batch,
                swap,
            };
            let job = match &replica.runner {
                Runner::Thread(jobs) => jobs.send(job).map(|()| None),
                Runner::Inline(_) => Ok(Some(job)),
            };
            if let Err(cb::SendError(job)) = job {
                // The replica's thread has gone (it cannot panic: `infer` is guarded). Put the
                // batch back for another replica.
                replica.state = State::Gone;
                let items = examples
                    .into_iter()
                    .zip(job.batch)
                    .map(|((pos, input), prepared)| (pos, input, prepared))
                    .collect();
                self.batcher.put_back(Formed { items, ..formed });
                self.check_alive("a replica's thread ended", run);
                continue;
            }
            replica.state = State::Busy;
            let now = Instant::now();
            {
                let mut m = self.metrics();
                m.batches += 1;
                m.largest_batch = m.largest_batch.max(size);
                m.batch_size.observe(size as f64);
                m.queue_wait
                    .observe(now.saturating_duration_since(formed.since).as_secs_f64());
            }
            self.inflight.insert(
                formed.seq,
                InFlight {
                    replica: r,
                    examples,
                    dispatched: now,
                    model_id,
                },
            );
            if let Ok(Some(job)) = job {
                self.run_inline(r, job, run);
            }
        }
    }

    /// Runs a batch on the dispatcher's own thread (see [`Runner::Inline`]) and sends its
    /// results on at once.
    fn run_inline(&mut self, r: usize, job: Job<H>, run: &RunContext) {
        let replica = &mut self.replicas[r];
        let Runner::Inline(model) = &mut replica.runner else {
            unreachable!("run_inline is given jobs of inline replicas only");
        };
        if let Some(new) = job.swap {
            *model = new;
        }
        let (result, took) = infer(&*self.handler, model, job.batch);
        let done = Event::Done {
            replica: r,
            incarnation: replica.incarnation,
            seq: job.seq,
            result,
            took,
        };
        self.on_event(done, run);
        self.emit();
    }

    /// Sends on what the reorder buffer releases: results in batch order, end-of-source notices
    /// after the results before them.
    fn emit(&mut self) {
        while let Some(release) = self.reorder.next() {
            // Fails only when the segment after the stage has gone: the run is failing.
            let Some(out) = &self.out else { continue };
            let sent = match release {
                Release::Batch(results) => out.send(results),
                Release::Signal(signal) => out.send_signal(signal),
            };
            if !sent {
                self.out = None;
            }
        }
    }

    fn on_event(&mut self, event: Event<H>, run: &RunContext) {
        match event {
            Event::Done {
                replica,
                incarnation,
                seq,
                result,
                took,
            } => {
                if self.replicas[replica].incarnation != incarnation {
                    return;
                }
                let Some(flight) = self.inflight.remove(&seq) else {
                    return;
                };
                let r = &mut self.replicas[replica];
                r.state = State::Idle;
                r.busy += took;
                self.batch_done(seq, flight, result, took, run);
            }
            Event::Ready {
                replica,
                incarnation,
                ids: loaded,
            } => {
                let r = &mut self.replicas[replica];
                if r.incarnation == incarnation && r.state == State::Loading {
                    r.state = State::Idle;
                    r.ids = ids(&loaded);
                    tracing::info!("model `{}`: replica {replica} loaded again", self.name);
                }
            }
            Event::LoadFailed {
                replica,
                incarnation,
                error,
            } => {
                let r = &mut self.replicas[replica];
                if r.incarnation == incarnation {
                    r.state = State::Gone;
                    tracing::error!(
                        "model `{}`: replica {replica} could not be loaded again: {error}",
                        self.name
                    );
                    self.check_alive(&error, run);
                }
            }
            Event::Reloaded {
                mut models,
                ids: loaded,
                took,
            } => {
                if let Some(watch) = &mut self.watch {
                    watch.reloaded();
                }
                let shared = ids(&loaded);
                // Every replica takes its new model with its next batch: from this moment on,
                // every batch runs on the new weights, and results say so.
                for r in &mut self.replicas {
                    if matches!(r.state, State::Idle | State::Busy) {
                        if let Some(model) = models.pop() {
                            r.next = Some((model, shared.clone()));
                        }
                    }
                }
                let mut m = self.metrics();
                m.swaps += 1;
                m.model_id = loaded.join(", ");
                tracing::info!(
                    "model `{}`: new weights loaded in {took:.2?}; results now carry `{}`",
                    self.name,
                    m.model_id
                );
            }
            Event::ReloadFailed { error } => {
                if let Some(watch) = &mut self.watch {
                    watch.reloaded();
                }
                self.metrics().swap_failures += 1;
                tracing::warn!(
                    "model `{}`: the watched weights changed but could not be loaded, so the running model stays: {error}",
                    self.name
                );
            }
        }
    }

    /// A replica finished a batch: its results go to the reorder buffer, or its elements to the
    /// dead letters.
    fn batch_done(
        &mut self,
        seq: u64,
        flight: InFlight<H>,
        result: Result<Vec<H::Inference>, String>,
        took: Duration,
        run: &RunContext,
    ) {
        let size = flight.examples.len();
        let failure = match result {
            Ok(outputs) if outputs.len() == size => {
                let model_id = flight.model_id;
                let results = flight
                    .examples
                    .into_iter()
                    .zip(outputs)
                    .map(|((pos, example), inference)| {
                        let model_id = model_id.clone();
                        let result = PredictionResult {
                            example,
                            inference,
                            model_id,
                        };
                        (pos, result)
                    })
                    .collect();
                self.reorder.complete(seq, results);
                let mut m = self.metrics();
                m.inferences += size as u64;
                m.busy += took;
                m.latency.observe(took.as_secs_f64());
                return;
            }
            Ok(outputs) => format!(
                "the model returned {} inferences for a batch of {size}",
                outputs.len()
            ),
            Err(error) => error,
        };
        {
            let mut m = self.metrics();
            m.failed_batches += 1;
            m.busy += took;
            m.latency.observe(took.as_secs_f64());
        }
        let why = format!(
            "model `{}` failed on this element's batch of {size}: {failure}",
            flight.model_id
        );
        for (pos, _) in flight.examples {
            run.dead_letter(self.id, pos, why.clone(), None);
        }
        self.reorder.complete(seq, Vec::new());
    }

    /// Gives up a batch that took too long and replaces the replica stuck with it.
    fn time_out(&mut self, seq: u64, limit: Duration, run: &RunContext) {
        let Some(flight) = self.inflight.remove(&seq) else {
            return;
        };
        let size = flight.examples.len();
        let why = format!(
            "model `{}` did not answer within the timeout of {limit:?} (batch of {size}); the batch was given up",
            flight.model_id
        );
        for (pos, _) in flight.examples {
            run.dead_letter(self.id, pos, why.clone(), None);
        }
        self.reorder.complete(seq, Vec::new());
        {
            let mut m = self.metrics();
            m.timeouts += 1;
            m.failed_batches += 1;
            m.replacements += 1;
        }
        let index = flight.replica;
        let old = &self.replicas[index];
        old.lost.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            "model `{}`: replica {index} timed out after {limit:?}; loading a replacement",
            self.name
        );
        let (ids, incarnation) = (old.ids.clone(), old.incarnation + 1);
        let spawn = Spawn {
            handler: &self.handler,
            device: self.device,
            events: &self.events_tx,
        };
        match spawn.replica(index, incarnation, None, ids) {
            Ok(fresh) => self.replicas[index] = fresh,
            Err(error) => {
                self.replicas[index].state = State::Gone;
                self.check_alive(&error, run);
            }
        }
    }

    /// With no replica left, the stage cannot go on: the run fails, and every element that
    /// reaches the stage from now on is dead-lettered with the reason.
    fn check_alive(&mut self, error: &str, run: &RunContext) {
        if self.fatal.is_some() || self.replicas.iter().any(|r| r.state != State::Gone) {
            return;
        }
        let why = format!("model `{}` has no replica left: {error}", self.name);
        run.fail(crate::Error::Config(why.clone()));
        self.batcher.cut_all();
        self.fatal = Some(why);
    }
}
