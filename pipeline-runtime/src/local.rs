//! What the workers of one process share in a split run: their `run_inference` stages and their
//! run contexts.
//!
//! Stages: each model is loaded once per process, not once per worker, and its batches are cut
//! from every worker's input (see `inference::dispatcher`'s lanes). The first worker to build a
//! stage loads its model and sets it up with a lane per worker; it keeps its own lane and the
//! dispatcher (which runs among its segments), and leaves the others' lanes here for them to take
//! when they build the same stage. A worker that has built its
//! pipeline without taking a lane (its build failed first) drops it, so the dispatcher does not
//! wait for input that will never come.
//!
//! Run contexts: the process's metrics endpoint and progress line (drawn by its first worker)
//! show the whole process, every worker's counts and queues.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::context::{prometheus_of, RunContext};

/// What the workers of one process share (see the module's documentation).
pub struct LocalWorkers {
    workers: usize,
    inner: Mutex<Inner>,
    /// Each worker's run context, once its share has started.
    contexts: Mutex<Vec<Option<Arc<RunContext>>>>,
}

#[derive(Default)]
struct Inner {
    /// Per stage: the lanes not yet taken, one slot per worker.
    lanes: HashMap<u32, Vec<Option<Box<dyn Any + Send>>>>,
    /// The workers that have built their pipeline: lanes made for them later are dropped.
    built: Vec<bool>,
}

impl LocalWorkers {
    /// What a process running `workers` workers shares.
    pub fn new(workers: usize) -> Self {
        Self {
            workers,
            inner: Mutex::new(Inner {
                lanes: HashMap::new(),
                built: vec![false; workers],
            }),
            contexts: Mutex::new(vec![None; workers]),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Worker `local`'s lane of stage `id`. The first worker to ask sets the stage up with
    /// `create(workers)`, which returns a lane per worker and what only that first worker gets
    /// (the dispatcher to run): `Some` of it is returned to that worker, `None` to the others.
    /// Other workers wait here while the first loads the model.
    pub(crate) fn lane<L: Any + Send, X>(
        &self,
        id: u32,
        local: usize,
        create: impl FnOnce(usize) -> crate::Result<(Vec<L>, X)>,
    ) -> crate::Result<(L, Option<X>)> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slots) = inner.lanes.get_mut(&id) {
            let lane = slots
                .get_mut(local)
                .and_then(Option::take)
                .and_then(|lane| lane.downcast::<L>().ok())
                .ok_or_else(|| {
                    crate::Error::Internal(format!(
                        "worker {local} found no lane of its own at stage {id}"
                    ))
                })?;
            return Ok((*lane, None));
        }
        let (lanes, first) = create(self.workers)?;
        let mut own = None;
        let mut slots: Vec<Option<Box<dyn Any + Send>>> = Vec::with_capacity(self.workers);
        for (at, lane) in lanes.into_iter().enumerate() {
            if at == local {
                own = Some(lane);
                slots.push(None);
            } else if inner.built.get(at).copied().unwrap_or(true) {
                // That worker is past building: nobody will take this lane.
                slots.push(None);
            } else {
                slots.push(Some(Box::new(lane)));
            }
        }
        inner.lanes.insert(id, slots);
        let own = own.ok_or_else(|| {
            crate::Error::Internal(format!(
                "stage {id} was set up without worker {local}'s lane"
            ))
        })?;
        Ok((own, Some(first)))
    }

    /// Worker `local` has built its pipeline (or failed to): the lanes it did not take are
    /// dropped, which ends their input at the dispatcher.
    pub(crate) fn built(&self, local: usize) {
        let dropped: Vec<Box<dyn Any + Send>> = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(built) = inner.built.get_mut(local) {
                *built = true;
            }
            inner
                .lanes
                .values_mut()
                .filter_map(|slots| slots.get_mut(local).and_then(Option::take))
                .collect()
        };
        // Dropped outside the lock: dropping a front closes its channel.
        drop(dropped);
    }

    /// Worker `local`'s share has started with this run context.
    pub(crate) fn joined(&self, local: usize, context: Arc<RunContext>) {
        let mut contexts = self.contexts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = contexts.get_mut(local) {
            *slot = Some(context);
        }
    }

    fn contexts(&self) -> Vec<Arc<RunContext>> {
        let contexts = self.contexts.lock().unwrap_or_else(|e| e.into_inner());
        contexts.iter().flatten().cloned().collect()
    }

    /// The Prometheus text of the process so far: every worker's stage counts added up, each
    /// worker's queues (labelled with the worker), and each model stage once (its figures are
    /// the process's: the workers share it).
    pub(crate) fn prometheus(&self) -> String {
        let contexts = self.contexts();
        let contexts: Vec<&RunContext> = contexts.iter().map(|c| &**c).collect();
        prometheus_of(&contexts)
    }

    /// (records read by sources, elements that reached sinks) so far in the process.
    pub(crate) fn progress(&self) -> (u64, u64) {
        self.contexts().iter().fold((0, 0), |(read, written), c| {
            let (r, w) = c.progress();
            (read + r, written + w)
        })
    }
}
