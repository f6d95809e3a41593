//! Windows on a live stream: `idle_after` lets a quiet source stop holding the watermark back,
//! and processing-time windows close as wall time passes — both during the run, with no element
//! arriving, at the checkpoint barriers that live sources send while they wait.
//!
//! The sources here wait as a live one does (a Redis source blocks on its stream, returns with
//! nothing, and sends the barriers due): each follows a script, and where it says so, waits —
//! returning empty chunks — until a result has come out of `combine_per_key`, or a limit. A
//! window that closes only at the end of the input therefore shows as a wait that ran into its
//! limit. The limits are generous; nothing depends on how fast the machine is.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tandem::checkpoint::CheckpointPolicy;
use tandem::io::{Record, Source};
use tandem::prelude::*;

#[derive(Clone, Debug, PartialEq)]
struct Click {
    /// Event time, ms.
    time: u64,
    arm: &'static str,
}

const MIN: u64 = 60_000;

fn clicks(arm: &'static str, minutes: impl IntoIterator<Item = u64>) -> Vec<Click> {
    minutes
        .into_iter()
        .map(|m| Click { time: m * MIN, arm })
        .collect()
}

/// Set once some result has come out of `combine_per_key`.
#[derive(Clone, Default)]
struct Gate(Arc<AtomicBool>);

impl Gate {
    fn open(&self) {
        self.0.store(true, SeqCst);
    }
    fn is_open(&self) -> bool {
        self.0.load(SeqCst)
    }
}

enum Step {
    Send(Vec<Click>),
    /// Returns empty chunks until the gate opens or the deadline passes (shared by the sources
    /// of a run, so none goes on before the others see it); records whether the gate opened
    /// first.
    Wait(Gate, Instant, Arc<AtomicBool>),
}

/// A source that acknowledges (so the run sends barriers) and follows its script.
struct Scripted {
    name: &'static str,
    steps: std::collections::VecDeque<Step>,
    sent: u64,
}

impl Source for Scripted {
    type Item = Click;

    fn describe(&self) -> String {
        format!("scripted source {}", self.name)
    }

    fn read_chunk<E: FnMut(Record<Click>)>(
        &mut self,
        _max: usize,
        mut emit: E,
    ) -> tandem::Result<bool> {
        match self.steps.front() {
            None => Ok(false),
            Some(Step::Send(_)) => {
                let Some(Step::Send(clicks)) = self.steps.pop_front() else {
                    unreachable!()
                };
                for click in clicks {
                    self.sent += 1;
                    emit(Record::Good(self.sent, click));
                }
                Ok(true)
            }
            Some(Step::Wait(gate, deadline, opened)) => {
                if Instant::now() < *deadline {
                    if !gate.is_open() {
                        // A live source's poll that found nothing.
                        std::thread::sleep(Duration::from_millis(5));
                        return Ok(true);
                    }
                    opened.store(true, SeqCst);
                }
                self.steps.pop_front();
                Ok(true)
            }
        }
    }

    fn acknowledges(&self) -> bool {
        true
    }
}

/// A live run's configuration: a barrier every 50 ms.
fn live() -> RunConfig {
    RunConfig {
        batch_size: 8,
        dead_letters: DeadLetterTarget::Memory,
        checkpoints: CheckpointPolicy {
            interval: Some(Duration::from_millis(50)),
            every: None,
        },
        ..RunConfig::default()
    }
}

struct Merged {
    active: Mutex<Option<Scripted>>,
    quiet: Mutex<Option<Scripted>>,
    /// Opens when the quiet arm's minute 0 reaches the window.
    quiet_arrived: Gate,
    gate: Gate,
    out: Collector<Combined<String, u64>>,
}

impl Merged {
    /// The quiet arm sends minute 0, waits for the window [20, 25) min of the active arm's
    /// clicks to come out, then sends minute 1 (behind the watermark, if it moved on). The
    /// active arm sends minutes 0..30 once the quiet arm's minute 0 has reached the window (so
    /// that it is never late), waits for the same window, then sends minutes 30..60. Neither
    /// waits past `limit`.
    fn new(limit: Duration) -> (Self, Arc<AtomicBool>) {
        let gate = Gate::default();
        let quiet_arrived = Gate::default();
        let opened = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + limit;
        let script = |name, before, after| Scripted {
            name,
            steps: [
                Step::Send(before),
                Step::Wait(gate.clone(), deadline, opened.clone()),
                Step::Send(after),
            ]
            .into(),
            sent: 0,
        };
        let mut active = script("active", clicks("active", 0..30), clicks("active", 30..60));
        let first = Instant::now() + Duration::from_secs(60);
        let ignored = Arc::default();
        active
            .steps
            .push_front(Step::Wait(quiet_arrived.clone(), first, ignored));
        let quiet = script("quiet", clicks("quiet", [0]), clicks("quiet", [1]));
        let args = Self {
            active: Mutex::new(Some(active)),
            quiet: Mutex::new(Some(quiet)),
            quiet_arrived,
            gate,
            out: Collector::new(),
        };
        (args, opened)
    }

    fn take(source: &Mutex<Option<Scripted>>) -> Scripted {
        source.lock().unwrap().take().expect("built once")
    }

    /// The time function of the window.
    fn time(&self, c: &Click) -> u64 {
        if c.arm == "quiet" {
            self.quiet_arrived.open();
        }
        c.time
    }

    fn watch(&self, c: &Combined<String, u64>) {
        if c.key == "active" && c.window.start == 20 * MIN as i64 {
            self.gate.open();
        }
    }

    /// (window start in minutes, arm) -> count.
    fn counts(&self) -> BTreeMap<(i64, String), u64> {
        let mut counts = BTreeMap::new();
        for c in self.out.take() {
            *counts
                .entry((c.window.start / MIN as i64, c.key))
                .or_default() += c.value;
        }
        counts
    }
}

pipeline! {
    /// A quiet arm merged with an active one; the quiet one goes idle after 200 ms.
    IdleAfter(args: Merged) {
        active = read(Merged::take(&args.active));
        quiet = read(Merged::take(&args.quiet));
        merge(active, quiet)
            -> window(Fixed::minutes(5).idle_after(Duration::from_millis(200)), |c: &Click| args.time(c))
            -> combine_per_key(|c: &Click| c.arm.to_string(), Count)
            -> inspect(|c: &Combined<String, u64>| args.watch(c))
            -> write(args.out.clone());
    }
}

pipeline! {
    /// The same without `idle_after`.
    HeldBack(args: Merged) {
        active = read(Merged::take(&args.active));
        quiet = read(Merged::take(&args.quiet));
        merge(active, quiet)
            -> window(Fixed::minutes(5), |c: &Click| args.time(c))
            -> combine_per_key(|c: &Click| c.arm.to_string(), Count)
            -> inspect(|c: &Combined<String, u64>| args.watch(c))
            -> write(args.out.clone());
    }
}

#[test]
fn with_idle_after_a_quiet_source_stops_holding_the_windows_of_an_active_one() {
    let (args, opened) = Merged::new(Duration::from_secs(60));
    let summary = tandem::job::run_pipeline::<IdleAfter>(&args, &live()).unwrap();
    // Neither source sent anything or ended while they waited: only the quiet source going idle
    // could have moved the watermark past minute 25, and only a barrier could have told.
    assert!(
        opened.load(SeqCst),
        "the window [20, 25) min was not emitted while the quiet source was idle"
    );
    // Once it sends again it holds the watermark back again, but the watermark does not go
    // back: its minute 1 is late.
    assert_eq!(summary.dead_letters.len(), 1, "{summary}");
    let dead = &summary.dead_letters[0];
    assert_eq!(
        (dead.source.as_str(), dead.position),
        ("scripted source quiet", 2),
        "{dead:?}"
    );
    assert!(
        dead.error.starts_with("too late") && dead.error.contains("idle_after"),
        "{}",
        dead.error
    );
    let counts = args.counts();
    assert_eq!(counts.get(&(0, "quiet".into())), Some(&1));
    let active: Vec<u64> = counts
        .iter()
        .filter(|((_, arm), _)| *arm == "active")
        .map(|(_, &n)| n)
        .collect();
    assert_eq!(active, vec![5; 12]);
}

#[test]
fn without_idle_after_a_quiet_source_holds_every_window_until_the_input_ends() {
    // The wait can only end by its limit here, so the limit is short.
    let (args, opened) = Merged::new(Duration::from_millis(1500));
    let summary = tandem::job::run_pipeline::<HeldBack>(&args, &live()).unwrap();
    assert!(
        !opened.load(SeqCst),
        "a window closed while the quiet source, still running, had sent nothing past minute 0"
    );
    // The watermark waited for the quiet source: its minute 1 counts.
    assert!(summary.dead_letters.is_empty(), "{summary}");
    let counts = args.counts();
    assert_eq!(counts.get(&(0, "quiet".into())), Some(&2));
    assert_eq!(counts.len(), 12 + 1);
}

struct Arrivals {
    source: Mutex<Option<Scripted>>,
    /// Early elements counted in the results so far.
    early: AtomicU64,
    gate: Gate,
    out: Collector<Combined<String, u64>>,
}

impl Arrivals {
    fn watch(&self, c: &Combined<String, u64>) {
        if c.key == "early" && self.early.fetch_add(c.value, SeqCst) + c.value == EACH {
            self.gate.open();
        }
    }
}

const EACH: u64 = 50;

pipeline! {
    /// Windows of 300 ms of wall-clock time; the elements' own times are ignored.
    ByArrival(args: Arrivals) {
        read(args.source.lock().unwrap().take().unwrap())
            -> window(Fixed::millis(300), processing_time)
            -> combine_per_key(|c: &Click| c.arm.to_string(), Count)
            -> inspect(|c: &Combined<String, u64>| args.watch(c))
            -> write(args.out.clone());
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn processing_time_windows_group_by_arrival_and_close_as_wall_time_passes() {
    let gate = Gate::default();
    let opened = Arc::new(AtomicBool::new(false));
    // Every element has the same event time: by event time, they would share one window.
    let same_time = |arm| (0..EACH).map(move |_| Click { time: 7, arm });
    let source = Scripted {
        name: "arrivals",
        steps: [
            Step::Send(same_time("early").collect()),
            Step::Wait(
                gate.clone(),
                Instant::now() + Duration::from_secs(60),
                opened.clone(),
            ),
            Step::Send(same_time("late").collect()),
        ]
        .into(),
        sent: 0,
    };
    let args = Arrivals {
        source: Mutex::new(Some(source)),
        early: AtomicU64::new(0),
        gate,
        out: Collector::new(),
    };
    let started = wall_ms();
    let summary = tandem::job::run_pipeline::<ByArrival>(&args, &live()).unwrap();
    let ended = wall_ms();
    assert!(summary.dead_letters.is_empty(), "{summary}");
    assert!(
        opened.load(SeqCst),
        "the early elements' windows did not close while the source waited"
    );
    let out = args.out.take();
    let total = |arm| {
        out.iter()
            .filter(|c| c.key == arm)
            .map(|c| c.value)
            .sum::<u64>()
    };
    assert_eq!((total("early"), total("late")), (EACH, EACH));
    for c in &out {
        assert_eq!(c.window.end - c.window.start, 300);
        assert!(
            started - 300 < c.window.start && c.window.start <= ended,
            "window {} is not of the run's wall-clock time [{started}, {ended}] ms",
            c.window
        );
    }
    // The late elements arrived after the early ones' windows had closed: no window holds both.
    let last_early = out
        .iter()
        .filter(|c| c.key == "early")
        .map(|c| c.window.end);
    let first_late = out
        .iter()
        .filter(|c| c.key == "late")
        .map(|c| c.window.start);
    assert!(
        last_early.max() <= first_late.min(),
        "{:?}",
        out.iter()
            .map(|c| (c.key.clone(), c.window))
            .collect::<Vec<_>>()
    );
}
