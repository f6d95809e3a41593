//! Checkpoints: sources acknowledge their input only once everything read before a barrier has
//! reached every sink durably — through merges of segments, a partition merged back, a model
//! stage and open windows — and never when the run fails.
//!
//! The source and the sink here are real implementations of tandem's `Source` and `Sink` traits
//! (as a user writes for their own systems) that record what was acknowledged and what was
//! durable at each moment; the Redis source and sink are tested against a real redis-server in
//! `tests/redis_streams.rs`.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::Scale;
use tandem::checkpoint::CheckpointPolicy;
use tandem::io::{BadRecord, Commit, Record, Sink, Source};
use tandem::prelude::*;

const MILLION: i64 = 1_000_000;

/// What every sink made durable and every source acknowledged, and any acknowledgement that
/// came before the durability it needs.
#[derive(Default)]
struct Ledger {
    /// Elements written, not yet durable.
    pending: Vec<i64>,
    /// Per source, the highest index whose element is durable in the sink.
    durable: BTreeMap<i64, i64>,
    /// Per source, the highest index acknowledged, and how many acknowledgements ran.
    acked: BTreeMap<i64, i64>,
    acks: usize,
    /// Acknowledgements that ran while the output did not hold what they acknowledge yet.
    violations: Vec<String>,
    /// Windows (by end) durably written, for the windowed pipeline.
    windows_durable: Vec<i64>,
    windows_pending: Vec<i64>,
    total: usize,
}

type Shared = Arc<Mutex<Ledger>>;

/// Reads `n` numbers `source * 1e6 + index` (index from 1), or a bad record at `bad_at`; its
/// checkpoint acknowledges everything read so far, checking first that the sink holds it.
struct Acking {
    source: i64,
    n: i64,
    next: i64,
    bad_at: Option<i64>,
    /// For windowed pipelines: element `i` has event time `i` ms, in windows of this size.
    window_ms: Option<i64>,
    /// Sleeps this long before each chunk: a slow input beside a fast one.
    pace: Option<std::time::Duration>,
    ledger: Shared,
}

impl Source for Acking {
    type Item = i64;

    fn describe(&self) -> String {
        format!("acking source {}", self.source)
    }

    fn read_chunk<E: FnMut(Record<i64>)>(
        &mut self,
        max: usize,
        mut emit: E,
    ) -> tandem::Result<bool> {
        if let Some(pace) = self.pace {
            std::thread::sleep(pace);
        }
        for _ in 0..max {
            if self.next > self.n {
                return Ok(false);
            }
            let index = self.next;
            self.next += 1;
            if self.bad_at == Some(index) {
                emit(Record::Bad(
                    index as u64,
                    BadRecord {
                        error: "not a number".into(),
                        raw: None,
                    },
                ));
            } else {
                emit(Record::Good(index as u64, self.source * MILLION + index));
            }
        }
        Ok(self.next <= self.n)
    }

    fn acknowledges(&self) -> bool {
        true
    }

    fn checkpoint(&mut self) -> tandem::Result<Option<Box<dyn Commit>>> {
        Ok(Some(Box::new(Ack {
            source: self.source,
            upto: self.next - 1,
            window_ms: self.window_ms,
            ledger: self.ledger.clone(),
        })))
    }
}

struct Ack {
    source: i64,
    upto: i64,
    window_ms: Option<i64>,
    ledger: Shared,
}

impl Commit for Ack {
    fn commit(self: Box<Self>) -> tandem::Result<()> {
        let mut ledger = self.ledger.lock().unwrap();
        ledger.acks += 1;
        if self.upto > 0 {
            let ok = match self.window_ms {
                // Every window holding an acknowledged element has been written durably.
                Some(size) => {
                    let end = (self.upto / size + 1) * size;
                    ledger.windows_durable.iter().any(|&e| e >= end)
                }
                None => ledger.durable.get(&self.source).copied().unwrap_or(0) >= self.upto,
            };
            if !ok {
                let msg = format!(
                    "source {} acknowledged up to {} before its output was durable",
                    self.source, self.upto
                );
                ledger.violations.push(msg);
            }
        }
        let acked = ledger.acked.entry(self.source).or_default();
        *acked = (*acked).max(self.upto);
        Ok(())
    }
}

/// A sink that is durable at checkpoints: what it wrote before a barrier counts from then on.
struct Durable(Shared);

impl Sink<i64> for Durable {
    fn describe(&self) -> String {
        "durable test sink".into()
    }
    fn write(&mut self, item: i64) -> Result<(), String> {
        let mut ledger = self.0.lock().unwrap();
        ledger.pending.push(item);
        ledger.total += 1;
        Ok(())
    }
    fn finish(&mut self) -> tandem::Result<Option<Box<dyn Commit>>> {
        <Self as Sink<i64>>::checkpoint(self).map(|_| None)
    }
    fn checkpoint(&mut self) -> tandem::Result<bool> {
        let mut ledger = self.0.lock().unwrap();
        for item in std::mem::take(&mut ledger.pending) {
            let (source, index) = (item / MILLION, item % MILLION);
            let at = ledger.durable.entry(source).or_default();
            *at = (*at).max(index);
        }
        Ok(true)
    }
}

impl Sink<Combined<u8, u64>> for Durable {
    fn describe(&self) -> String {
        "durable window sink".into()
    }
    fn write(&mut self, item: Combined<u8, u64>) -> Result<(), String> {
        let mut ledger = self.0.lock().unwrap();
        ledger.windows_pending.push(item.window.end);
        ledger.total += item.value as usize;
        Ok(())
    }
    fn finish(&mut self) -> tandem::Result<Option<Box<dyn Commit>>> {
        <Self as Sink<Combined<u8, u64>>>::checkpoint(self).map(|_| None)
    }
    fn checkpoint(&mut self) -> tandem::Result<bool> {
        let mut ledger = self.0.lock().unwrap();
        let done = std::mem::take(&mut ledger.windows_pending);
        ledger.windows_durable.extend(done);
        Ok(true)
    }
}

struct Args {
    ledger: Shared,
    n: i64,
    bad_at: Option<i64>,
    /// Source 2: this many records, read slowly.
    slow: Option<i64>,
}

impl Args {
    fn new(n: i64) -> Self {
        Self {
            ledger: Shared::default(),
            n,
            bad_at: None,
            slow: None,
        }
    }

    fn source(&self, source: i64) -> Acking {
        let slow = self.slow.filter(|_| source == 2);
        Acking {
            source,
            n: slow.unwrap_or(self.n),
            next: 1,
            bad_at: if source == 1 { self.bad_at } else { None },
            window_ms: None,
            pace: slow.map(|_| std::time::Duration::from_millis(2)),
            ledger: self.ledger.clone(),
        }
    }
}

pipeline! {
    /// Two sources merged across segments, split and merged back, through a model, into a sink.
    Everything(args: Args) {
        a = read(args.source(1));
        b = read(args.source(2));
        [x, y] = merge(a, b) -> partition(split_by(|v: &i64| *v, [50, 50]));
        merge(x, y)
            -> run_inference(Scale::new(8))
            -> map(|p: PredictionResult<i64, i64>| p.inference / 3)
            -> write(Durable(args.ledger.clone()));
    }
}

fn config(every: u64) -> RunConfig {
    RunConfig {
        batch_size: 16,
        channel_capacity: 2,
        checkpoints: CheckpointPolicy {
            interval: None,
            every: Some(every),
        },
        ..RunConfig::default()
    }
}

#[test]
fn sources_acknowledge_during_the_run_only_what_every_sink_holds_durably() {
    let args = Args::new(3000);
    tandem::job::run_pipeline::<Everything>(&args, &config(100)).unwrap();
    let ledger = args.ledger.lock().unwrap();
    assert!(ledger.violations.is_empty(), "{:?}", ledger.violations);
    assert_eq!(ledger.total, 6000);
    assert_eq!(ledger.acked.get(&1), Some(&3000));
    assert_eq!(ledger.acked.get(&2), Some(&3000));
    // 6,000 records at a checkpoint every 100: acknowledged as the run goes, not at its end.
    assert!(ledger.acks > 20, "only {} acknowledgements", ledger.acks);
}

#[test]
fn a_merge_passes_a_barrier_on_only_once_its_slow_input_delivered_it_too() {
    // A fast input runs far ahead of a slow one: were the merge to pass a barrier on when the
    // fast input delivers it, the slow input's acknowledgement would run while its records
    // before the barrier are still queued.
    for _ in 0..3 {
        let args = Args {
            slow: Some(400),
            ..Args::new(20_000)
        };
        tandem::job::run_pipeline::<Everything>(&args, &config(100)).unwrap();
        let ledger = args.ledger.lock().unwrap();
        assert!(ledger.violations.is_empty(), "{:?}", ledger.violations);
        assert_eq!(ledger.total, 20_400);
        assert_eq!(ledger.acked.get(&2), Some(&400));
    }
}

/// On a worker of a split run the segments are timely operators sharing one thread: the merge's
/// barrier alignment, the small channels and the model stage must not wait for each other there
/// (a sender pauses its readers instead). The same promises hold on 2 workers (these sources
/// cannot be split: the first worker reads both, the other has nothing to read).
#[test]
fn the_promises_hold_when_the_segments_share_a_workers_thread() {
    for (slow, n) in [(None, 3000), (Some(400), 20_000)] {
        let args = Args {
            slow,
            ..Args::new(n)
        };
        let config = RunConfig {
            cluster: tandem::cluster::Cluster::threads(2),
            ..config(100)
        };
        let summary = tandem::job::run_pipeline::<Everything>(&args, &config).unwrap();
        assert!(summary.totals().balanced(), "{summary}");
        let ledger = args.ledger.lock().unwrap();
        assert!(ledger.violations.is_empty(), "{:?}", ledger.violations);
        let second = slow.unwrap_or(n);
        assert_eq!(ledger.total as i64, n + second);
        assert_eq!(ledger.acked.get(&1), Some(&n));
        assert_eq!(ledger.acked.get(&2), Some(&second));
        assert!(ledger.acks > 20, "only {} acknowledgements", ledger.acks);
    }
}

#[test]
fn a_failed_run_acknowledges_nothing_after_its_last_complete_checkpoint() {
    let args = Args {
        bad_at: Some(2000),
        ..Args::new(3000)
    };
    let config = RunConfig {
        fail_fast: true,
        ..config(100)
    };
    assert!(tandem::job::run_pipeline::<Everything>(&args, &config).is_err());
    let ledger = args.ledger.lock().unwrap();
    assert!(ledger.violations.is_empty(), "{:?}", ledger.violations);
    let acked = ledger.acked.get(&1).copied().unwrap_or(0);
    assert!(
        acked < 2000,
        "source 1 acknowledged up to {acked}, past its bad record"
    );
    assert!(ledger.acked.get(&2).copied().unwrap_or(0) < 3000);
}

/// A sink whose output becomes durable only when the run commits (as files do).
struct AtCommit(Shared);

impl Sink<i64> for AtCommit {
    fn describe(&self) -> String {
        "sink durable at the commit".into()
    }
    fn write(&mut self, item: i64) -> Result<(), String> {
        let mut ledger = self.0.lock().unwrap();
        ledger.pending.push(item);
        ledger.total += 1;
        Ok(())
    }
    fn finish(&mut self) -> tandem::Result<Option<Box<dyn Commit>>> {
        Ok(Some(Box::new(Durable(self.0.clone()))))
    }
}

impl Commit for Durable {
    fn commit(mut self: Box<Self>) -> tandem::Result<()> {
        <Self as Sink<i64>>::checkpoint(&mut self).map(|_| ())
    }
}

pipeline! {
    AtTheEnd(args: Args) {
        read(args.source(1)) -> map(|v: i64| v) -> write(AtCommit(args.ledger.clone()));
    }
}

#[test]
fn with_a_sink_durable_only_at_the_commit_everything_is_acknowledged_after_it() {
    let args = Args::new(1000);
    tandem::job::run_pipeline::<AtTheEnd>(&args, &config(100)).unwrap();
    let ledger = args.ledger.lock().unwrap();
    // An acknowledgement before the commit would have found nothing durable.
    assert!(ledger.violations.is_empty(), "{:?}", ledger.violations);
    assert_eq!(ledger.acked.get(&1), Some(&1000));
}

struct WindowArgs {
    ledger: Shared,
}

fn windowed_source(ledger: &Shared) -> Acking {
    Acking {
        source: 1,
        n: 5000,
        next: 1,
        bad_at: None,
        window_ms: Some(400),
        pace: None,
        ledger: ledger.clone(),
    }
}

pipeline! {
    /// Windows of 400 ms over event times 1..=5000 ms, counted.
    Windowed(args: WindowArgs) {
        read(windowed_source(&args.ledger))
            -> window(Fixed::millis(400), |v: &i64| v % MILLION)
            -> combine_per_key(|_: &i64| 0u8, Count)
            -> write(Durable(args.ledger.clone()));
    }
}

#[test]
fn no_input_of_a_window_still_open_is_acknowledged() {
    let args = WindowArgs {
        ledger: Shared::default(),
    };
    tandem::job::run_pipeline::<Windowed>(&args, &config(50)).unwrap();
    let ledger = args.ledger.lock().unwrap();
    assert!(ledger.violations.is_empty(), "{:?}", ledger.violations);
    assert_eq!(ledger.total, 5000, "every element counted once");
    assert_eq!(ledger.acked.get(&1), Some(&5000));
    assert!(ledger.acks > 5, "only {} acknowledgements", ledger.acks);
}
