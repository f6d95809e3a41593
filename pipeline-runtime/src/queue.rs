//! How full the bounded queues are: each boundary's channel, and a `run_inference` stage's
//! intake and results. Sampled by the queue's ends as they send and receive, so the peak is
//! exact (it only grows on a send, and every send samples) and the depth is as of the last
//! send or receive. In the summary (peaks) and on the metrics endpoint (depth, peak, capacity).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// One bounded queue's gauge.
#[derive(Debug)]
pub struct QueueGauge {
    /// The stage the queue feeds (a merge, a `run_inference` stage) or, for a model's results,
    /// the stage they come from.
    pub stage: u32,
    /// `input` (a merge's channel), `intake` (in front of a model), `results` (after it).
    pub queue: &'static str,
    /// What it holds at most, in batches.
    pub capacity: u64,
    depth: AtomicU64,
    peak: AtomicU64,
}

impl QueueGauge {
    pub(crate) fn new(stage: u32, queue: &'static str, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            stage,
            queue,
            capacity: capacity.max(1) as u64,
            depth: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        })
    }

    /// Records that the queue holds `len` batches now.
    #[inline]
    pub(crate) fn sample(&self, len: usize) {
        let len = len as u64;
        self.depth.store(len, Relaxed);
        self.peak.fetch_max(len, Relaxed);
    }

    /// Batches in the queue, as of the last send or receive.
    pub fn depth(&self) -> u64 {
        self.depth.load(Relaxed)
    }

    /// The most batches the queue has held.
    pub fn peak(&self) -> u64 {
        self.peak.load(Relaxed)
    }
}

/// A queue's figures at the end of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSummary {
    pub stage: u32,
    pub label: &'static str,
    pub queue: &'static str,
    pub capacity: u64,
    /// The most batches it held at once: never above `capacity`.
    pub peak: u64,
}
