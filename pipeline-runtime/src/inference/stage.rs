//! Setting a `run_inference` stage up: load the model once per replica (before the pipeline
//! reads anything), then make the fronts (one per lane), the dispatcher and the channels between
//! them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel as cb;

use super::batcher::Batcher;
use super::dispatcher::{Dispatcher, Lane, LaneContext, Out};
use super::front::{Intake, Pending};
use super::hot_swap::Watch;
use super::reorder::Reorder;
use super::replica::{ids, load, Spawn};
use super::{DeviceRequest, Front, SharedHandler};
use crate::metrics::{InferenceMetrics, MetricsCell};
use crate::ops::Receiver;
use crate::push::StageCell;
use crate::queue::QueueGauge;

/// One worker's ends of a stage set up by [`start`]: its front, its results, its queues, and
/// where its run context goes (see `dispatcher`'s lanes).
pub(crate) struct LaneEnds<H: SharedHandler> {
    pub front: Front<H>,
    pub results: Receiver<Out<H>>,
    /// The intake and the results queue.
    pub queues: Vec<Arc<QueueGauge>>,
    pub context: LaneContext,
    /// The stage's figures (one cell for every lane).
    pub metrics: MetricsCell,
}

/// A stage set up by [`start`]: a lane per worker, the dispatcher to run, and its figures.
pub(crate) struct Started<H: SharedHandler> {
    pub lanes: Vec<LaneEnds<H>>,
    pub dispatcher: Dispatcher<H>,
    pub metrics: MetricsCell,
}

/// Loads the model (once per replica) and sets the stage up with `lanes` lanes (one per worker
/// sharing it); nothing runs until the dispatcher is started. A model that cannot load is an
/// error here, before the pipeline reads anything.
pub(crate) fn start<H: SharedHandler>(
    id: u32,
    handler: H,
    device: DeviceRequest,
    capacity: usize,
    lanes: usize,
    shared_thread: bool,
) -> Result<Started<H>, String> {
    let handler = Arc::new(handler);
    let name = handler.name();
    let batcher = Batcher::new(handler.batching());
    let batching = batcher.batching();
    let serving = handler.serving();
    let device = device.with_software_gpu(device.software_gpu || serving.software_gpu);
    let count = serving.replicas.max(1);
    // Stamp the watched file before loading, so a change during the load is not missed.
    let watch = serving
        .watch
        .as_deref()
        .map(|path| Watch::new(path, serving.poll));
    let (events_tx, events) = cb::unbounded();
    let spawn = Spawn {
        handler: &handler,
        device,
        events: &events_tx,
    };
    let started = Instant::now();
    let mut replicas = Vec::with_capacity(count);
    let mut device_name = String::new();
    let mut model_id = String::new();
    for index in 0..count {
        let loaded = load(&*handler, device)?;
        if loaded.ids.is_empty() {
            return Err("the handler's `load` returned no model id".into());
        }
        device_name = loaded.device;
        model_id = loaded.ids.join(", ");
        let ids = ids(&loaded.ids);
        replicas.push(if count == 1 && serving.timeout.is_none() {
            // Nothing to hand out while the lone replica runs, and no batch to give up: the
            // dispatcher runs the model itself, two hand-offs per batch fewer.
            spawn.inline(loaded.model, ids)
        } else {
            spawn.replica(index, 0, Some(loaded.model), ids)?
        });
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
    let name: Arc<str> = Arc::from(name);
    let mut ends = Vec::with_capacity(lanes);
    let mut inner = Vec::with_capacity(lanes);
    for _ in 0..lanes.max(1) {
        let (input_tx, input) = cb::bounded(capacity.max(2));
        let intake = QueueGauge::new(id, "intake", capacity.max(2));
        let results_gauge = QueueGauge::new(id, "results", capacity);
        let pending = Pending::new(batching.max_batch);
        let (out, results) = crate::ops::channel(capacity, results_gauge.clone(), 1, shared_thread);
        let context = LaneContext::default();
        ends.push(LaneEnds {
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
            queues: vec![intake.clone(), results_gauge],
            context: context.clone(),
            metrics: metrics.clone(),
        });
        inner.push(Lane {
            intake: Intake {
                input: Some(input),
                gauge: intake,
                pending,
                due: None,
                received: 0,
                deferred: false,
            },
            reorder: Reorder::default(),
            out: Some(out),
            context,
            outstanding: 0,
        });
    }
    Ok(Started {
        lanes: ends,
        dispatcher: Dispatcher {
            id,
            handler,
            name,
            device,
            timeout: serving.timeout,
            lanes: inner,
            batcher,
            events_tx,
            events,
            replicas,
            inflight: HashMap::new(),
            metrics: metrics.clone(),
            watch,
            fatal: None,
        },
        metrics,
    })
}
