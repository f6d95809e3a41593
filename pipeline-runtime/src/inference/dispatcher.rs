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
//! Lanes: in a run split across several workers of one process, the workers share the stage
//! (its models are loaded once per process, see `crate::local`): each worker's front feeds a lane of
//! its own (its channel, its partial batch, its reorder buffer, its results channel, its run
//! context for dead letters), and batches are cut across the lanes. Batches are numbered once
//! for all lanes and every lane's reorder buffer learns of every batch (with no results for the
//! lanes that had none in it), so each lane's results and signals keep their order. A run on one
//! worker has one lane.
//!
//! Backpressure: the dispatcher reads no more input while as many batches wait as there are
//! replicas, so the bounded channels from the fronts fill and the segments in front wait.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel as cb;

use super::batcher::{Batcher, Formed};
use super::front::{lock_metrics, lock_pending, Intake, Msg, Piece};
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

/// An input waiting in the batcher: its lane, position, the input and what `prepare` made of it.
pub(super) type Entry<H> = (
    usize,
    Pos,
    <H as ModelHandler>::Input,
    <H as ModelHandler>::Prepared,
);

/// A batch on a replica.
pub(super) struct InFlight<H: SharedHandler> {
    replica: usize,
    examples: Vec<(usize, Pos, H::Input)>,
    dispatched: Instant,
    model_id: Arc<str>,
}

/// The largest group index a handler may use (a keyed handler uses one per key).
const MAX_GROUPS: usize = 1 << 16;

/// How often a dispatcher shared by several workers looks whether its own worker's run failed
/// (see [`Dispatcher::stop_lanes`]).
const LANE_POLL: Duration = Duration::from_millis(20);

/// The run context of the worker a lane serves, set when that worker takes the lane; unset, the
/// lane's dead letters go to the dispatcher's own run context.
pub(crate) type LaneContext = Arc<OnceLock<Arc<RunContext>>>;

/// One worker's way through a shared stage: see the module's documentation.
pub(crate) struct Lane<H: SharedHandler> {
    pub(super) intake: Intake<H>,
    pub(super) reorder: Reorder<(Pos, Out<H>)>,
    pub(super) out: Option<Sender<Out<H>>>,
    pub(super) context: LaneContext,
    /// Inputs accepted from this lane and not yet finished (sent on or dead-lettered).
    pub(super) outstanding: usize,
}

impl<H: SharedHandler> Lane<H> {
    fn run<'a>(&'a self, own: &'a RunContext) -> &'a RunContext {
        self.context.get().map_or(own, |c| &**c)
    }

    /// Whether everything this lane will ever send has gone: its input ended and nothing of it
    /// is left in the stage.
    fn finished(&self) -> bool {
        self.intake.input.is_none() && self.outstanding == 0 && self.reorder.is_empty()
    }
}

/// The thread between the fronts and the replicas: see the module's documentation.
pub(crate) struct Dispatcher<H: SharedHandler> {
    pub(super) id: u32,
    pub(super) handler: Arc<H>,
    pub(super) name: Arc<str>,
    pub(super) device: DeviceRequest,
    pub(super) timeout: Option<Duration>,
    pub(super) lanes: Vec<Lane<H>>,
    pub(super) batcher: Batcher<Entry<H>>,
    pub(super) events_tx: cb::Sender<Event<H>>,
    pub(super) events: cb::Receiver<Event<H>>,
    pub(super) replicas: Vec<Replica<H>>,
    pub(super) inflight: HashMap<u64, InFlight<H>>,
    pub(super) metrics: MetricsCell,
    pub(super) watch: Option<Watch>,
    /// Set when no replica is left: every element is dead-lettered with this reason.
    pub(super) fatal: Option<String>,
}

impl<H: SharedHandler> Dispatcher<H> {
    pub(crate) fn run(mut self, run: &RunContext) -> crate::Result<()> {
        crate::panic::quiet_thread();
        let shared = self.lanes.len() > 1;
        let mut stopped = false;
        loop {
            self.dispatch(run);
            self.emit();
            let idle = self.lanes.iter().all(|l| l.intake.input.is_none())
                && self.batcher.is_empty()
                && self.inflight.is_empty();
            if idle {
                break;
            }
            if shared && !stopped && run.aborted() {
                stopped = true;
                self.stop_lanes(run);
            }
            let now = Instant::now();
            let mut wait = self.next_wake().map_or(Duration::from_secs(3600), |at| {
                at.saturating_duration_since(now)
            });
            if shared && !stopped {
                wait = wait.min(LANE_POLL);
            }
            let live = self
                .replicas
                .iter()
                .filter(|r| r.state != State::Gone)
                .count();
            // The inputs to read from (none while enough batches wait: backpressure), cloned so
            // that handling a message may change the lanes.
            let inputs: Vec<(usize, cb::Receiver<Msg<H>>)> = if self.batcher.waiting() < live.max(1)
            {
                self.lanes
                    .iter()
                    .enumerate()
                    .filter_map(|(at, l)| l.intake.input.clone().map(|input| (at, input)))
                    .collect()
            } else {
                Vec::new()
            };
            let events = self.events.clone();
            let got = {
                let mut select = cb::Select::new();
                for (_, input) in &inputs {
                    select.recv(input);
                }
                let on_events = select.recv(&events);
                match select.select_timeout(wait) {
                    Err(_) => None,
                    Ok(op) if op.index() == on_events => op.recv(&events).ok().map(Err),
                    Ok(op) => {
                        let (lane, input) = &inputs[op.index()];
                        Some(Ok((*lane, op.recv(input), input.len())))
                    }
                }
            };
            match got {
                None => {}
                Some(Err(event)) => self.on_event(event, run),
                Some(Ok((lane, msg, queued))) => {
                    let intake = &mut self.lanes[lane].intake;
                    if msg.is_ok() {
                        intake.gauge.sample(queued);
                    }
                    match msg {
                        Ok(Msg::Piece(piece)) => {
                            intake.received_piece();
                            self.accept(lane, piece, run);
                        }
                        Ok(Msg::Signal(signal)) => self.signal(lane, signal),
                        Ok(Msg::Started(since)) => {
                            intake.due_at(since + self.batcher.batching().max_wait);
                        }
                        Err(_) => self.close_input(lane, run),
                    }
                }
            }
            self.on_timers(run);
        }
        // Dropping the replicas' senders ends their threads.
        Ok(())
    }

    /// The worker running this shared dispatcher failed: the other workers' runs must stop too
    /// (their lanes would otherwise keep the dispatcher, and so this worker, waiting for their
    /// input to end). Each fails with an error naming this stage and the cause.
    #[cold]
    fn stop_lanes(&self, run: &RunContext) {
        let why = run
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or_else(|| "it was stopped".to_owned(), ToString::to_string);
        let (worker, _) = run.split.unwrap_or_default();
        for lane in &self.lanes {
            let own = lane.run(run);
            if !std::ptr::eq(own, run) {
                own.fail(crate::Error::Peer(format!(
                    "worker {worker}, which runs model `{}` for this process's workers, failed, \
                     so no worker commits its outputs: {why}",
                    self.name
                )));
            }
        }
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
            .chain(self.lanes.iter().filter_map(|l| l.intake.due))
            .min()
    }

    fn accept(&mut self, at: usize, piece: Piece<H>, run: &RunContext) {
        let Lane {
            context,
            outstanding,
            ..
        } = &mut self.lanes[at];
        let run = context.get().map_or(run, |c| &**c);
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
            *outstanding += 1;
            self.batcher
                .add(group, (at, pos, input, prepared), piece.since);
        }
    }

    /// A signal (a source has ended, a checkpoint barrier). Every input before it came before
    /// it, so cutting every group puts them all in batches numbered below `next_seq`: the signal
    /// leaves once those have, and so after all their results.
    fn signal(&mut self, lane: usize, signal: Signal) {
        self.batcher.cut_all();
        self.lanes[lane]
            .reorder
            .signal(self.batcher.next_seq(), signal);
    }

    /// A lane's input has ended: its partial batch joins the batcher. Once every lane's input
    /// has ended, every partial batch runs now, whatever its size; before, the other lanes'
    /// inputs may still fill it (its timer cuts it at `max_wait` otherwise).
    fn close_input(&mut self, at: usize, run: &RunContext) {
        let intake = &mut self.lanes[at].intake;
        intake.input = None;
        intake.due = None;
        let piece = lock_pending(&intake.pending).take();
        if let Some(piece) = piece {
            self.accept(at, piece, run);
        }
        if self.lanes.iter().all(|l| l.intake.input.is_none()) {
            self.batcher.cut_all();
        }
    }

    fn on_timers(&mut self, run: &RunContext) {
        let now = Instant::now();
        let max_wait = self.batcher.batching().max_wait;
        let mut taken = false;
        for at in 0..self.lanes.len() {
            if let Some(piece) = self.lanes[at].intake.take_due(now, max_wait) {
                self.accept(at, piece, run);
                taken = true;
            }
        }
        if taken && self.lanes.len() > 1 {
            // A lane's partial batch is due: the others' partial batches go with it now, in
            // one batch, rather than each in a smaller one of its own at its own time.
            for at in 0..self.lanes.len() {
                if let Some(piece) = self.lanes[at].intake.take_now() {
                    self.accept(at, piece, run);
                }
            }
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

    /// Batch `seq` has ended: `results` go to their lanes' reorder buffers, and every other lane
    /// learns that the batch had nothing of it.
    fn complete(&mut self, seq: u64, results: Vec<(usize, Pos, Out<H>)>) {
        if let [lane] = self.lanes.as_mut_slice() {
            lane.outstanding -= results.len();
            let results = results.into_iter().map(|(_, pos, r)| (pos, r)).collect();
            lane.reorder.complete(seq, results);
            return;
        }
        let mut split: Vec<Vec<(Pos, Out<H>)>> = self.lanes.iter().map(|_| Vec::new()).collect();
        for (lane, pos, result) in results {
            split[lane].push((pos, result));
        }
        for (lane, results) in self.lanes.iter_mut().zip(split) {
            lane.outstanding -= results.len();
            lane.reorder.complete(seq, results);
        }
    }

    /// Dead-letters an element of a batch that did not run (in its lane's run context).
    fn dead(&mut self, (lane, pos): (usize, Pos), why: String, run: &RunContext) {
        let lane = &mut self.lanes[lane];
        lane.outstanding -= 1;
        lane.run(run).dead_letter(self.id, pos, why, None);
    }

    /// Hands waiting batches to idle replicas, the least busy first.
    fn dispatch(&mut self, run: &RunContext) {
        if let Some(why) = self.fatal.clone() {
            for formed in self.batcher.drain() {
                for (lane, pos, _, _) in formed.items {
                    self.dead((lane, pos), why.clone(), run);
                }
                self.complete(formed.seq, Vec::new());
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
            for (lane, pos, input, prepared) in formed.items {
                examples.push((lane, pos, input));
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
                    .map(|((lane, pos, input), prepared)| (lane, pos, input, prepared))
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

    /// Sends on what the reorder buffers release: results in batch order, signals after the
    /// results before them; a lane that has finished closes its results channel, so the segment
    /// after it on its worker ends without waiting for the other lanes.
    fn emit(&mut self) {
        for lane in &mut self.lanes {
            while let Some(release) = lane.reorder.next() {
                // Fails only when the segment after the stage has gone: the run is failing.
                let Some(out) = &lane.out else { continue };
                let sent = match release {
                    Release::Batch(results) => out.send(results),
                    Release::Signal(signal) => out.send_signal(signal),
                };
                if !sent {
                    lane.out = None;
                }
            }
            if lane.out.is_some() && lane.finished() {
                lane.out = None;
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

    /// A replica finished a batch: its results go to the reorder buffers, or its elements to the
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
                    .map(|((lane, pos, example), inference)| {
                        let model_id = model_id.clone();
                        let result = PredictionResult {
                            example,
                            inference,
                            model_id,
                        };
                        (lane, pos, result)
                    })
                    .collect();
                self.complete(seq, results);
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
        for (lane, pos, _) in flight.examples {
            self.dead((lane, pos), why.clone(), run);
        }
        self.complete(seq, Vec::new());
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
        for (lane, pos, _) in flight.examples {
            self.dead((lane, pos), why.clone(), run);
        }
        self.complete(seq, Vec::new());
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
