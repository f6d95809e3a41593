//! Replicas: copies of the model, each on a thread of its own, running one batch at a time.
//!
//! Replica threads are detached (not scoped): a model stuck in `infer` must not keep the run from
//! ending once its batch has timed out. They hold only the prepared batch and the model, never
//! the run's shared state. A replica that timed out is marked lost and replaced by a fresh one
//! (a new incarnation), which loads its own model.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel as cb;

use super::{DeviceRequest, Loaded, SharedHandler};
use crate::panic::guard;

/// Loads the handler's model, a panic in `load` being an error like any other.
pub(crate) fn load<H: SharedHandler>(
    handler: &H,
    device: DeviceRequest,
) -> Result<Loaded<H::Model>, String> {
    guard(|| handler.load(device)).and_then(|r| r)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Loading,
    Idle,
    Busy,
    Gone,
}

pub(crate) struct Job<H: SharedHandler> {
    pub seq: u64,
    pub batch: Vec<H::Prepared>,
    /// A model from a hot swap, to use from this batch on.
    pub swap: Option<H::Model>,
}

/// What replica and reload threads tell the dispatcher.
pub(crate) enum Event<H: SharedHandler> {
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
pub(crate) type Ids = Arc<[Arc<str>]>;

pub(crate) fn ids(ids: &[String]) -> Ids {
    ids.iter().map(|id| Arc::from(id.as_str())).collect()
}

/// Where a replica runs its batches.
pub(crate) enum Runner<H: SharedHandler> {
    /// On a thread of its own, fed through this channel.
    Thread(cb::Sender<Job<H>>),
    /// On the dispatcher's thread, which holds the model: a lone replica with no timeout, where
    /// a thread of its own would add two hand-offs per batch and nothing else (the dispatcher
    /// has no other batch to hand out meanwhile).
    Inline(H::Model),
}

/// The dispatcher's handle on one replica.
pub(crate) struct Replica<H: SharedHandler> {
    pub runner: Runner<H>,
    pub lost: Arc<AtomicBool>,
    pub incarnation: u64,
    pub state: State,
    /// Time spent in `infer`: a batch goes to the least busy idle replica.
    pub busy: Duration,
    pub ids: Ids,
    /// A model from a hot swap and its ids, handed over with the replica's next batch.
    pub next: Option<(H::Model, Ids)>,
}

/// How a replica thread starts: with a model loaded before the run, or loading its own.
pub(crate) struct Spawn<'a, H: SharedHandler> {
    pub handler: &'a Arc<H>,
    pub device: DeviceRequest,
    pub events: &'a cb::Sender<Event<H>>,
}

impl<H: SharedHandler> Spawn<'_, H> {
    /// Starts replica `index`; with no model, its thread loads one first and says when ready.
    pub fn replica(
        &self,
        index: usize,
        incarnation: u64,
        model: Option<H::Model>,
        ids: Ids,
    ) -> Result<Replica<H>, String> {
        let (jobs, rx) = cb::bounded(1);
        let lost = Arc::new(AtomicBool::new(false));
        let state = if model.is_some() {
            State::Idle
        } else {
            State::Loading
        };
        let thread = Thread {
            handler: self.handler.clone(),
            index,
            incarnation,
            device: self.device,
            events: self.events.clone(),
            lost: lost.clone(),
        };
        std::thread::Builder::new()
            .name(format!("tandem-model-{index}"))
            .spawn(move || thread.run(model, rx))
            .map_err(|e| format!("cannot start a thread for replica {index}: {e}"))?;
        Ok(Replica {
            runner: Runner::Thread(jobs),
            lost,
            incarnation,
            state,
            busy: Duration::ZERO,
            ids,
            next: None,
        })
    }

    /// Replica `0`, run on the dispatcher's thread with `model` (see [`Runner::Inline`]).
    pub fn inline(&self, model: H::Model, ids: Ids) -> Replica<H> {
        Replica {
            runner: Runner::Inline(model),
            lost: Arc::new(AtomicBool::new(false)),
            incarnation: 0,
            state: State::Idle,
            busy: Duration::ZERO,
            ids,
            next: None,
        }
    }
}

/// Runs `infer` on a batch, a panic being an error like any other; how long it took.
pub(crate) fn infer<H: SharedHandler>(
    handler: &H,
    model: &mut H::Model,
    batch: Vec<H::Prepared>,
) -> (Result<Vec<H::Inference>, String>, Duration) {
    let started = Instant::now();
    let result = guard(|| handler.infer(model, batch)).and_then(|r| r);
    (result, started.elapsed())
}

struct Thread<H: SharedHandler> {
    handler: Arc<H>,
    index: usize,
    incarnation: u64,
    device: DeviceRequest,
    events: cb::Sender<Event<H>>,
    lost: Arc<AtomicBool>,
}

impl<H: SharedHandler> Thread<H> {
    fn run(self, model: Option<H::Model>, jobs: cb::Receiver<Job<H>>) {
        crate::panic::quiet_thread();
        let (replica, incarnation) = (self.index, self.incarnation);
        let mut model = match model {
            Some(model) => model,
            None => match load(&*self.handler, self.device) {
                Ok(loaded) => {
                    let ids = loaded.ids;
                    let _ = self.events.send(Event::Ready {
                        replica,
                        incarnation,
                        ids,
                    });
                    loaded.model
                }
                Err(error) => {
                    let _ = self.events.send(Event::LoadFailed {
                        replica,
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
            let (result, took) = infer(&*self.handler, &mut model, job.batch);
            if self.lost.load(Relaxed) {
                return;
            }
            let done = Event::Done {
                replica,
                incarnation,
                seq: job.seq,
                result,
                took,
            };
            if self.events.send(done).is_err() {
                return;
            }
        }
    }
}
