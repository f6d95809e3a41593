//! Queues stay within their bounds: with a fast source in front of a slow consumer, each queue's
//! gauge (in the summary) shows it full at times and never over its capacity, and the number of
//! elements read but not yet consumed, counted at the edges, never exceeds what the bounded
//! channels (and a `run_inference` stage's bounded intake) can hold.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::StandIn;
use tandem::io::{Commit, Sink};
use tandem::prelude::*;

/// The numbers `0..n`, counting how many have been taken.
struct Counted {
    next: u64,
    end: u64,
    taken: Arc<AtomicU64>,
}

impl Iterator for Counted {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.next == self.end {
            return None;
        }
        self.next += 1;
        self.taken.fetch_add(1, SeqCst);
        Some(self.next - 1)
    }
}

/// What a test watches: elements taken from the sources, elements consumed, and the largest
/// difference seen by the consumer.
#[derive(Clone, Default)]
struct Gauge {
    taken: Arc<AtomicU64>,
    consumed: Arc<AtomicU64>,
    peak: Arc<AtomicU64>,
}

impl Gauge {
    fn source(&self, n: u64) -> Counted {
        Counted {
            next: 0,
            end: n,
            taken: self.taken.clone(),
        }
    }

    /// Called by the consumer before it consumes `n` elements.
    fn consume(&self, n: u64, pause: Duration) {
        let waiting = self.taken.load(SeqCst) - self.consumed.load(SeqCst);
        self.peak.fetch_max(waiting, SeqCst);
        std::thread::sleep(pause);
        self.consumed.fetch_add(n, SeqCst);
    }
}

fn only_queue<'a>(summary: &'a Summary, queue: &str) -> &'a tandem::queue::QueueSummary {
    let mut found = summary.queues.iter().filter(|q| q.queue == queue);
    let first = found
        .next()
        .unwrap_or_else(|| panic!("no {queue} queue:\n{summary}"));
    assert!(found.next().is_none(), "two {queue} queues:\n{summary}");
    first
}

/// A sink that takes its time over each element.
#[derive(Clone)]
struct SlowSink {
    gauge: Gauge,
    written: Arc<Mutex<Vec<u64>>>,
}

impl Sink<u64> for SlowSink {
    fn describe(&self) -> String {
        "a slow sink".into()
    }

    fn write(&mut self, item: u64) -> Result<(), String> {
        self.gauge.consume(1, Duration::from_micros(20));
        self.written.lock().unwrap().push(item);
        Ok(())
    }

    fn finish(&mut self) -> tandem::Result<Option<Box<dyn Commit>>> {
        Ok(None)
    }
}

struct MergeArgs {
    a: Mutex<Option<Counted>>,
    b: Mutex<Option<Counted>>,
    sink: SlowSink,
}

pipeline! {
    /// Two sources into a merge, whose channel feeds a slow sink.
    TwoIntoOne(args: MergeArgs) {
        a = read(Memory::new(args.a.lock().unwrap().take().unwrap()));
        b = read(Memory::new(args.b.lock().unwrap().take().unwrap()))
            -> map(|x| x + 1_000_000);
        merge(a, b) -> write(args.sink.clone());
    }
}

#[test]
fn a_merge_channel_holds_at_most_its_capacity() {
    let gauge = Gauge::default();
    let n = 4_000;
    let args = MergeArgs {
        a: Mutex::new(Some(gauge.source(n))),
        b: Mutex::new(Some(gauge.source(n))),
        sink: SlowSink {
            gauge: gauge.clone(),
            written: Arc::default(),
        },
    };
    let config = RunConfig {
        batch_size: 16,
        channel_capacity: 4,
        ..RunConfig::default()
    };
    let summary = TwoIntoOne::run_blocking(&args, &config).unwrap();
    // The merge's channel, as its gauge saw it: full at times, never over.
    let queue = only_queue(&summary, "input");
    assert_eq!(queue.label, "merge(a, b)");
    assert_eq!(queue.capacity, config.channel_capacity as u64);
    assert_eq!(queue.peak, queue.capacity, "{summary}");
    assert_eq!(args.sink.written.lock().unwrap().len() as u64, 2 * n);
    // Each source: `channel_capacity` batches in the channel and one more waiting to be sent;
    // the consumer: the batch it is working through.
    let bound = (2 * (config.channel_capacity + 1) + 1) * config.batch_size;
    let peak = gauge.peak.load(SeqCst) as usize;
    eprintln!("peak {peak} elements read and not yet written; bound {bound}");
    assert!(
        peak <= bound,
        "{peak} elements waited, the bound is {bound}"
    );
    assert!(
        peak >= config.channel_capacity * config.batch_size,
        "the channel never filled ({peak} elements waited at most): the test did not load it"
    );
}

/// A model that takes a millisecond per batch of up to 8.
fn slow_model(gauge: Gauge) -> StandIn<u64, u64> {
    StandIn::new("slow", 8, move |batch: Vec<u64>| {
        gauge.consume(batch.len() as u64, Duration::from_millis(1));
        batch.iter().map(|x| x * 2).collect()
    })
}

struct ModelArgs {
    input: Mutex<Option<Counted>>,
    gauge: Gauge,
    out: Collector<u64>,
}

pipeline! {
    /// A fast source into a slow model.
    IntoModel(args: ModelArgs) {
        read(Memory::new(args.input.lock().unwrap().take().unwrap()))
            -> run_inference(slow_model(args.gauge.clone()))
            -> map(|p| p.inference)
            -> write(args.out.clone());
    }
}

#[test]
fn a_model_stage_takes_in_at_most_its_bounded_intake() {
    let gauge = Gauge::default();
    let n = 2_000;
    let args = ModelArgs {
        input: Mutex::new(Some(gauge.source(n))),
        gauge: gauge.clone(),
        out: Collector::new(),
    };
    let config = RunConfig {
        batch_size: 16,
        channel_capacity: 4,
        ..RunConfig::default()
    };
    let summary = IntoModel::run_blocking(&args, &config).unwrap();
    // The model's intake, as its gauge saw it: full at times, never over; its results queue
    // never over either.
    let intake = only_queue(&summary, "intake");
    assert_eq!(intake.capacity, config.channel_capacity as u64);
    assert_eq!(intake.peak, intake.capacity, "{summary}");
    let results = only_queue(&summary, "results");
    assert!(results.peak <= results.capacity, "{summary}");
    let mut out = args.out.take();
    out.sort_unstable();
    assert_eq!(out, (0..n).map(|x| x * 2).collect::<Vec<_>>());
    // In front of the model: the intake channel (`channel_capacity` pieces of at most a batch),
    // a piece waiting to be sent, the inputs being gathered into the next piece, one batch cut
    // and waiting for the replica, and the batch the replica is running.
    let max_batch = 8;
    let bound = (config.channel_capacity + 4) * max_batch;
    let peak = gauge.peak.load(SeqCst) as usize;
    eprintln!("peak {peak} elements read and not yet through the model; bound {bound}");
    assert!(
        peak <= bound,
        "{peak} elements waited, the bound is {bound}"
    );
    // More than the batch running and the one waiting: inputs queued in the intake (each piece
    // there may share the channel with the message that announced its first input).
    assert!(
        peak > 2 * max_batch,
        "nothing queued in front of the model ({peak} elements waited at most): the test did not load it"
    );
}
