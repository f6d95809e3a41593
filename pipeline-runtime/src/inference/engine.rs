//! How a `run_inference` stage runs.
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
//! Backpressure: the dispatcher reads no more input while as many batches wait as there are
//! replicas, so the bounded channel from the front fills and the segment in front waits.
//!
//! Replica threads are detached (not scoped): a model stuck in `infer` must not keep the run from
//! ending once its batch has timed out. They hold only the prepared batch and the model, never
//! the pipeline's shared state.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel as cb;

use super::{Batching, DeviceRequest, ModelHandler, PredictionResult};
use crate::context::RunContext;
use crate::metrics::{InferenceMetrics, MetricsCell};
use crate::ops::{Batch, Receiver};
use crate::panic::guard;
use crate::push::{Flow, Pos, Push, StageCell};
use crate::queue::QueueGauge;

type Item<H> = (
    Pos,
    <H as ModelHandler>::Input,
    <H as ModelHandler>::Prepared,
);
type Out<H> = PredictionResult<<H as ModelHandler>::Input, <H as ModelHandler>::Inference>;

/// Prepared inputs sent from the front to the dispatcher; `since` is when the first arrived.
pub(crate) struct Piece<H: ModelHandler> {
    since: Instant,
    items: Vec<Item<H>>,
}

/// What the front says to the dispatcher.
pub(crate) enum Msg<H: ModelHandler> {
    /// A full batch's worth of inputs.
    Piece(Piece<H>),
    /// The first input of a new partial batch arrived at this time: the dispatcher takes the
    /// partial batch from the shared buffer when `max_wait` has passed, even if the segment in
    /// front is blocked reading its source by then.
    Started(Instant),
    /// A source has ended: after every input it sent (see [`Dispatcher::source_ended`]).
    Ended(crate::push::Ended),
}

/// Inputs prepared by the front and not yet sent: shared with the dispatcher, which takes them
/// when they have waited `max_wait`.
struct Pending<H: ModelHandler> {
    since: Instant,
    items: Vec<Item<H>>,
    /// Pieces the front has made from this buffer (counted under its lock): while the dispatcher
    /// has received fewer, a piece is on its way and the buffer's inputs must wait behind it.
    sent: u64,
}

type SharedPending<H> = Arc<std::sync::Mutex<Pending<H>>>;

fn take<H: ModelHandler>(pending: &SharedPending<H>, max: usize) -> Option<Piece<H>> {
    let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
    if p.items.is_empty() {
        return None;
    }
    let items = std::mem::replace(&mut p.items, Vec::with_capacity(max));
    p.sent += 1;
    Some(Piece {
        since: p.since,
        items,
    })
}

/// The part of a `run_inference` stage fused into the segment in front of it: pre-processes each
/// input on that segment's thread and hands them to the dispatcher.
pub struct Front<H: ModelHandler> {
    cell: StageCell,
    handler: Arc<H>,
    name: Arc<str>,
    pending: SharedPending<H>,
    max: usize,
    prepare_failures: u64,
    metrics: MetricsCell,
    tx: Option<cb::Sender<Msg<H>>>,
    intake: Arc<QueueGauge>,
}

impl<H: ModelHandler> Front<H> {
    fn send(&mut self, msg: Msg<H>) {
        // Fails only when the dispatcher has gone, i.e. the run is already failing.
        if let Some(tx) = &self.tx {
            if tx.send(msg).is_err() {
                self.tx = None;
            } else {
                self.intake.sample(tx.len());
            }
        }
    }

    fn publish(&mut self, run: &RunContext) {
        self.cell.publish(run);
        if self.prepare_failures != 0 {
            lock(&self.metrics).prepare_failures += self.prepare_failures;
            self.prepare_failures = 0;
        }
    }
}

impl<H: ModelHandler> Push<H::Input> for Front<H> {
    #[inline]
    fn push(&mut self, item: H::Input, pos: Pos, run: &RunContext) {
        self.cell.count();
        let error = match guard(|| self.handler.prepare(&item)) {
            Ok(Ok(prepared)) => {
                let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                let first = p.items.is_empty();
                if first {
                    p.since = Instant::now();
                }
                p.items.push((pos, item, prepared));
                let msg = if p.items.len() >= self.max {
                    let items = std::mem::replace(&mut p.items, Vec::with_capacity(self.max));
                    p.sent += 1;
                    Some(Msg::Piece(Piece {
                        since: p.since,
                        items,
                    }))
                } else if first {
                    Some(Msg::Started(p.since))
                } else {
                    None
                };
                drop(p);
                if let Some(msg) = msg {
                    self.send(msg);
                }
                return;
            }
            Ok(Err(error)) => error,
            Err(panic) => panic,
        };
        self.prepare_failures += 1;
        self.cell.dead(
            run,
            pos,
            format!(
                "preparing the input for model `{}` failed: {error}",
                self.name
            ),
        );
    }

    fn flush(&mut self, run: &RunContext, _partial: bool) -> Flow {
        // Partial batches are the dispatcher's to take, by its timer.
        self.publish(run);
        if self.tx.is_some() {
            Flow::Continue
        } else {
            Flow::Stop
        }
    }

    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        if let Some(piece) = take(&self.pending, self.max) {
            self.send(Msg::Piece(piece));
        }
        self.publish(run);
        // Dropping the sender tells the dispatcher the input has ended.
        self.tx = None;
        Ok(())
    }

    /// Passed on behind every input that came before it: the partial batch waiting here goes
    /// first.
    fn source_ended(&mut self, ended: crate::push::Ended, _: &RunContext) {
        if let Some(piece) = take(&self.pending, self.max) {
            self.send(Msg::Piece(piece));
        }
        self.send(Msg::Ended(ended));
    }
}

fn lock(metrics: &MetricsCell) -> MutexGuard<'_, InferenceMetrics> {
    metrics.lock().unwrap_or_else(|e| e.into_inner())
}

/// A stage started by [`start`]: its front, the receiving end of its results, the dispatcher to
/// run on a thread of the executor, and its metrics.
pub(crate) struct Started<H: ModelHandler> {
    pub front: Front<H>,
    pub results: Receiver<Out<H>>,
    pub dispatcher: Dispatcher<H>,
    pub metrics: MetricsCell,
    /// The intake and the results queue.
    pub queues: Vec<Arc<QueueGauge>>,
}

/// Loads the model (once per replica) and sets the stage up; nothing runs until the dispatcher
/// is started. A model that cannot load is an error here, before the pipeline reads anything.
pub(crate) fn start<H: ModelHandler>(
    id: u32,
    handler: H,
    device: DeviceRequest,
    capacity: usize,
) -> Result<Started<H>, String> {
    let handler = Arc::new(handler);
    let name = handler.name();
    let mut batching = handler.batching();
    batching.max_batch = batching.max_batch.max(1);
    batching.min_batch = batching.min_batch.clamp(1, batching.max_batch);
    let serving = handler.serving();
    let device = device.with_software_gpu(device.software_gpu || serving.software_gpu);
    let count = serving.replicas.max(1);
    // Stamp the watched file before loading, so a change during the load is not missed.
    let watch = serving.watch.as_ref().map(|path| Watch {
        stamp: stamp(path),
        path: path.clone(),
        poll: serving.poll.max(Duration::from_millis(1)),
        next: Instant::now() + serving.poll,
        loading: false,
    });
    let (events_tx, events) = cb::unbounded();
    let started = Instant::now();
    let mut replicas = Vec::with_capacity(count);
    let mut device_name = String::new();
    let mut model_id = String::new();
    for index in 0..count {
        let loaded = guard(|| handler.load(device)).and_then(|r| r)?;
        if loaded.ids.is_empty() {
            return Err("the handler's `load` returned no model id".into());
        }
        device_name = loaded.device;
        model_id = loaded.ids.join(", ");
        let ids = loaded.ids.iter().map(|id| Arc::from(id.as_str())).collect();
        let replica = Replica::spawn(
            &handler,
            index,
            0,
            Some(loaded.model),
            device,
            ids,
            &events_tx,
        )?;
        replicas.push(replica);
    }
    let metrics: MetricsCell = Arc::new(std::sync::Mutex::new(InferenceMetrics {
        stage: id,
        name: name.clone(),
        model_id,
        device: device_name,
        replicas: count,
        load_time: started.elapsed(),
        ..InferenceMetrics::default()
    }));
    let (input_tx, input) = cb::bounded(capacity.max(2));
    let intake = QueueGauge::new(id, "intake", capacity.max(2));
    let results_gauge = QueueGauge::new(id, "results", capacity);
    let pending = Arc::new(std::sync::Mutex::new(Pending {
        since: Instant::now(),
        items: Vec::with_capacity(batching.max_batch),
        sent: 0,
    }));
    let (out, results) = crate::ops::channel(capacity, results_gauge.clone());
    let name: Arc<str> = Arc::from(name);
    Ok(Started {
        front: Front {
            cell: StageCell::new(id),
            handler: handler.clone(),
            name: name.clone(),
            pending: pending.clone(),
            max: batching.max_batch,
            prepare_failures: 0,
            metrics: metrics.clone(),
            tx: Some(input_tx),
            intake: intake.clone(),
        },
        results,
        dispatcher: Dispatcher {
            id,
            handler,
            name,
            device,
            batching,
            timeout: serving.timeout,
            input: Some(input),
            intake: intake.clone(),
            pending,
            front_due: None,
            received: 0,
            deferred: false,
            events_tx,
            events,
            replicas,
            groups: Vec::new(),
            formed: VecDeque::new(),
            next_seq: 0,
            inflight: HashMap::new(),
            finished: BTreeMap::new(),
            next_out: 0,
            ended: VecDeque::new(),
            out: Some(out),
            metrics: metrics.clone(),
            watch,
            fatal: None,
        },
        metrics,
        queues: vec![intake, results_gauge],
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Loading,
    Idle,
    Busy,
    Gone,
}

struct Job<H: ModelHandler> {
    seq: u64,
    batch: Vec<H::Prepared>,
    /// A model from a hot swap, to use from this batch on.
    swap: Option<H::Model>,
}

enum Event<H: ModelHandler> {
    Done {
        replica: usize,
        incarnation: u64,
        seq: u64,
        result: Result<Vec<H::Inference>, String>,
        took: Duration,
    },
    Ready {
        replica: usize,
        incarnation: u64,
        ids: Vec<String>,
    },
    LoadFailed {
        replica: usize,
        incarnation: u64,
        error: String,
    },
    Reloaded {
        models: Vec<H::Model>,
        ids: Vec<String>,
        took: Duration,
    },
    ReloadFailed {
        error: String,
    },
}

/// The ids a model's results carry, one per group.
type Ids = Arc<[Arc<str>]>;

struct Replica<H: ModelHandler> {
    jobs: cb::Sender<Job<H>>,
    lost: Arc<AtomicBool>,
    incarnation: u64,
    state: State,
    busy: Duration,
    ids: Arc<[Arc<str>]>,
    /// A model from a hot swap and its ids, handed over with the replica's next batch.
    next: Option<(H::Model, Ids)>,
}

impl<H: ModelHandler> Replica<H> {
    /// Starts a replica's thread; with no model, the thread loads one first and says when ready.
    fn spawn(
        handler: &Arc<H>,
        index: usize,
        incarnation: u64,
        model: Option<H::Model>,
        device: DeviceRequest,
        ids: Arc<[Arc<str>]>,
        events: &cb::Sender<Event<H>>,
    ) -> Result<Self, String> {
        let (jobs, rx) = cb::bounded(1);
        let lost = Arc::new(AtomicBool::new(false));
        let state = if model.is_some() {
            State::Idle
        } else {
            State::Loading
        };
        let (handler, events, flag) = (handler.clone(), events.clone(), lost.clone());
        std::thread::Builder::new()
            .name(format!("tandem-model-{index}"))
            .spawn(move || replica(handler, index, incarnation, model, device, rx, events, flag))
            .map_err(|e| format!("cannot start a thread for replica {index}: {e}"))?;
        Ok(Self {
            jobs,
            lost,
            incarnation,
            state,
            busy: Duration::ZERO,
            ids,
            next: None,
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn replica<H: ModelHandler>(
    handler: Arc<H>,
    index: usize,
    incarnation: u64,
    model: Option<H::Model>,
    device: DeviceRequest,
    jobs: cb::Receiver<Job<H>>,
    events: cb::Sender<Event<H>>,
    lost: Arc<AtomicBool>,
) {
    crate::panic::quiet_thread();
    let mut model = match model {
        Some(model) => model,
        None => match guard(|| handler.load(device)).and_then(|r| r) {
            Ok(loaded) => {
                let _ = events.send(Event::Ready {
                    replica: index,
                    incarnation,
                    ids: loaded.ids,
                });
                loaded.model
            }
            Err(error) => {
                let _ = events.send(Event::LoadFailed {
                    replica: index,
                    incarnation,
                    error,
                });
                return;
            }
        },
    };
    // Ends when the dispatcher drops the sender: the end of the run, or this replica replaced.
    for job in jobs {
        if let Some(new) = job.swap {
            model = new;
        }
        let started = Instant::now();
        let batch = job.batch;
        let result = guard(|| handler.infer(&mut model, batch)).and_then(|r| r);
        let took = started.elapsed();
        if lost.load(Relaxed) {
            return;
        }
        let done = Event::Done {
            replica: index,
            incarnation,
            seq: job.seq,
            result,
            took,
        };
        if events.send(done).is_err() {
            return;
        }
    }
}

/// What identifies a version of a watched file.
type Stamp = (SystemTime, u64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok()?, meta.len(), inode))
}

struct Watch {
    path: PathBuf,
    stamp: Option<Stamp>,
    poll: Duration,
    next: Instant,
    loading: bool,
}

struct Group<H: ModelHandler> {
    items: Vec<Item<H>>,
    since: Instant,
}

struct Formed<H: ModelHandler> {
    seq: u64,
    group: usize,
    since: Instant,
    items: Vec<Item<H>>,
}

struct InFlight<H: ModelHandler> {
    replica: usize,
    examples: Vec<(Pos, H::Input)>,
    dispatched: Instant,
    model_id: Arc<str>,
}

/// The largest group index a handler may use (a keyed handler uses one per key).
const MAX_GROUPS: usize = 1 << 16;

/// The thread between the front and the replicas: see the module's documentation.
pub(crate) struct Dispatcher<H: ModelHandler> {
    id: u32,
    handler: Arc<H>,
    name: Arc<str>,
    device: DeviceRequest,
    batching: Batching,
    timeout: Option<Duration>,
    input: Option<cb::Receiver<Msg<H>>>,
    intake: Arc<QueueGauge>,
    /// The front's partial batch, and when it is due (its first input's arrival + max wait).
    pending: SharedPending<H>,
    front_due: Option<Instant>,
    /// Pieces received from the front, and whether taking its partial batch waits for one.
    received: u64,
    deferred: bool,
    events_tx: cb::Sender<Event<H>>,
    events: cb::Receiver<Event<H>>,
    replicas: Vec<Replica<H>>,
    groups: Vec<Group<H>>,
    formed: VecDeque<Formed<H>>,
    next_seq: u64,
    inflight: HashMap<u64, InFlight<H>>,
    /// Results of batches that ended, waiting for the earlier ones: output keeps batch order.
    finished: BTreeMap<u64, Batch<Out<H>>>,
    next_out: u64,
    /// End-of-source notices, each to be passed on once the batches before `.0` are out.
    ended: VecDeque<(u64, crate::push::Ended)>,
    out: Option<crate::ops::Sender<Out<H>>>,
    metrics: MetricsCell,
    watch: Option<Watch>,
    /// Set when no replica is left: every element is dead-lettered with this reason.
    fatal: Option<String>,
}

impl<H: ModelHandler> Dispatcher<H> {
    pub(crate) fn run(mut self, run: &RunContext) -> crate::Result<()> {
        crate::panic::quiet_thread();
        loop {
            self.dispatch(run);
            self.emit();
            let idle = self.input.is_none()
                && self.groups.iter().all(|g| g.items.is_empty())
                && self.formed.is_empty()
                && self.inflight.is_empty();
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
            let input = match &self.input {
                Some(input) if self.formed.len() < live.max(1) => input.clone(),
                _ => cb::never(),
            };
            let events = self.events.clone();
            cb::select! {
                recv(input) -> msg => match msg {
                    Ok(Msg::Piece(piece)) => {
                        self.intake.sample(input.len());
                        self.received += 1;
                        if std::mem::take(&mut self.deferred) {
                            self.front_due = Some(Instant::now());
                        }
                        self.accept(piece, run);
                    }
                    Ok(Msg::Ended(ended)) => {
                        self.intake.sample(input.len());
                        self.source_ended(ended);
                    }
                    Ok(Msg::Started(since)) => {
                        self.intake.sample(input.len());
                        let due = since + self.batching.max_wait;
                        self.front_due = Some(self.front_due.map_or(due, |d| d.min(due)));
                    }
                    Err(_) => self.close_input(run),
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
        lock(&self.metrics)
    }

    fn next_wake(&self) -> Option<Instant> {
        let cuts = self
            .groups
            .iter()
            .filter(|g| !g.items.is_empty() && g.items.len() >= self.batching.min_batch)
            .map(|g| g.since + self.batching.max_wait);
        let timeouts = self
            .timeout
            .into_iter()
            .flat_map(|t| self.inflight.values().map(move |f| f.dispatched + t));
        let watch = self.watch.as_ref().map(|w| w.next);
        cuts.chain(timeouts)
            .chain(watch)
            .chain(self.front_due)
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
            while self.groups.len() <= group {
                self.groups.push(Group {
                    items: Vec::new(),
                    since: piece.since,
                });
            }
            let g = &mut self.groups[group];
            if g.items.is_empty() {
                g.since = piece.since;
            }
            g.items.push((pos, input, prepared));
            if g.items.len() >= self.batching.max_batch {
                self.cut(group);
            }
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

    /// A source has ended. Every input it sent came before the notice, so cutting every group
    /// puts them all in batches numbered below `next_seq`: the notice goes on once those are out
    /// (in `emit`), and so after all their results.
    fn source_ended(&mut self, ended: crate::push::Ended) {
        for group in 0..self.groups.len() {
            self.cut(group);
        }
        self.ended.push_back((self.next_seq, ended));
    }

    /// The input has ended: every partial batch runs now, whatever its size.
    fn close_input(&mut self, run: &RunContext) {
        self.input = None;
        self.front_due = None;
        if let Some(piece) = take(&self.pending, self.batching.max_batch) {
            self.accept(piece, run);
        }
        for group in 0..self.groups.len() {
            self.cut(group);
        }
    }

    fn on_timers(&mut self, run: &RunContext) {
        let now = Instant::now();
        if self.front_due.is_some_and(|due| due <= now) {
            self.front_due = None;
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.sent != self.received {
                // A full piece made before these inputs is still in the channel: take it first,
                // then look again, so inputs keep their order.
                self.deferred = true;
            } else if !p.items.is_empty() {
                let due = p.since + self.batching.max_wait;
                if due <= now {
                    let items = std::mem::replace(
                        &mut p.items,
                        Vec::with_capacity(self.batching.max_batch),
                    );
                    let piece = Piece {
                        since: p.since,
                        items,
                    };
                    drop(p);
                    self.accept(piece, run);
                } else {
                    self.front_due = Some(due);
                }
            }
        }
        for group in 0..self.groups.len() {
            let g = &self.groups[group];
            if !g.items.is_empty()
                && g.items.len() >= self.batching.min_batch
                && g.since + self.batching.max_wait <= now
            {
                self.cut(group);
            }
        }
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
        self.poll_watch(now);
    }

    /// Hands waiting batches to idle replicas, the least busy first.
    fn dispatch(&mut self, run: &RunContext) {
        if let Some(why) = &self.fatal {
            for formed in std::mem::take(&mut self.formed) {
                for (pos, _, _) in formed.items {
                    run.dead_letter(self.id, pos, why.clone(), None);
                }
                self.finished.insert(formed.seq, Vec::new());
            }
            return;
        }
        while !self.formed.is_empty() {
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
            let formed = self.formed.pop_front().expect("a batch waits");
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
            if let Err(cb::SendError(job)) = replica.jobs.send(job) {
                // The replica's thread has gone (it cannot panic: `infer` is guarded). Put the
                // batch back for another replica.
                replica.state = State::Gone;
                let items = examples
                    .into_iter()
                    .zip(job.batch)
                    .map(|((pos, input), prepared)| (pos, input, prepared))
                    .collect();
                self.formed.push_front(Formed { items, ..formed });
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
        }
    }

    /// Sends on the results of finished batches, in batch order.
    fn emit(&mut self) {
        while let Some(results) = self.finished.remove(&self.next_out) {
            self.next_out += 1;
            if results.is_empty() {
                continue;
            }
            if let Some(out) = &self.out {
                // Fails only when the segment after the stage has gone: the run is failing.
                if !out.send(results) {
                    self.out = None;
                }
            }
        }
        while self
            .ended
            .front()
            .is_some_and(|&(before, _)| before <= self.next_out)
        {
            let Some((_, ended)) = self.ended.pop_front() else {
                break;
            };
            if let Some(out) = &self.out {
                if !out.send_ended(ended) {
                    self.out = None;
                }
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
                let size = flight.examples.len();
                let failure = match result {
                    Ok(outputs) if outputs.len() == size => {
                        let results = flight
                            .examples
                            .into_iter()
                            .zip(outputs)
                            .map(|((pos, example), inference)| {
                                let model_id = flight.model_id.clone();
                                (
                                    pos,
                                    PredictionResult {
                                        example,
                                        inference,
                                        model_id,
                                    },
                                )
                            })
                            .collect();
                        self.finished.insert(seq, results);
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
                self.finished.insert(seq, Vec::new());
            }
            Event::Ready {
                replica,
                incarnation,
                ids,
            } => {
                let r = &mut self.replicas[replica];
                if r.incarnation == incarnation && r.state == State::Loading {
                    r.state = State::Idle;
                    r.ids = ids.iter().map(|id| Arc::from(id.as_str())).collect();
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
                ids,
                took,
            } => {
                if let Some(watch) = &mut self.watch {
                    watch.loading = false;
                }
                let shared: Arc<[Arc<str>]> = ids.iter().map(|id| Arc::from(id.as_str())).collect();
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
                m.model_id = ids.join(", ");
                tracing::info!(
                    "model `{}`: new weights loaded in {took:.2?}; results now carry `{}`",
                    self.name,
                    m.model_id
                );
            }
            Event::ReloadFailed { error } => {
                if let Some(watch) = &mut self.watch {
                    watch.loading = false;
                }
                self.metrics().swap_failures += 1;
                tracing::warn!(
                    "model `{}`: the watched weights changed but could not be loaded, so the running model stays: {error}",
                    self.name
                );
            }
        }
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
        self.finished.insert(seq, Vec::new());
        {
            let mut m = self.metrics();
            m.timeouts += 1;
            m.failed_batches += 1;
            m.replacements += 1;
        }
        let index = flight.replica;
        let old = &self.replicas[index];
        old.lost.store(true, Relaxed);
        tracing::warn!(
            "model `{}`: replica {index} timed out after {limit:?}; loading a replacement",
            self.name
        );
        let ids = old.ids.clone();
        let incarnation = old.incarnation + 1;
        match Replica::spawn(
            &self.handler,
            index,
            incarnation,
            None,
            self.device,
            ids,
            &self.events_tx,
        ) {
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
        for group in 0..self.groups.len() {
            self.cut(group);
        }
        self.fatal = Some(why);
    }

    fn poll_watch(&mut self, now: Instant) {
        let Some(watch) = &mut self.watch else {
            return;
        };
        if now < watch.next {
            return;
        }
        watch.next = now + watch.poll;
        if watch.loading {
            return;
        }
        let current = stamp(&watch.path);
        // A file that has gone may be in the middle of being replaced: keep the running model.
        if current.is_none() || current == watch.stamp {
            return;
        }
        watch.stamp = current;
        watch.loading = true;
        let count = self
            .replicas
            .iter()
            .filter(|r| matches!(r.state, State::Idle | State::Busy))
            .count()
            .max(1);
        let (handler, events, device) = (self.handler.clone(), self.events_tx.clone(), self.device);
        tracing::info!(
            "model `{}`: `{}` changed; loading it beside the running model",
            self.name,
            watch.path.display()
        );
        let spawned = std::thread::Builder::new()
            .name("tandem-model-reload".into())
            .spawn(move || {
                crate::panic::quiet_thread();
                let started = Instant::now();
                let mut models = Vec::with_capacity(count);
                let mut ids = Vec::new();
                for _ in 0..count {
                    match guard(|| handler.load(device)).and_then(|r| r) {
                        Ok(loaded) => {
                            models.push(loaded.model);
                            ids = loaded.ids;
                        }
                        Err(error) => {
                            let _ = events.send(Event::ReloadFailed { error });
                            return;
                        }
                    }
                }
                let took = started.elapsed();
                let _ = events.send(Event::Reloaded { models, ids, took });
            });
        if let Err(error) = spawned {
            watch.loading = false;
            tracing::warn!("cannot start a thread to reload the model: {error}");
        }
    }
}
