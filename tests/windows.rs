//! `window` and `combine_per_key`: event-time windows, the watermark and its allowed lateness,
//! the built-in combiners and a user combiner, each in a real pipeline whose counts add up.

mod common;

use std::time::Duration;

use common::{run_checked, StandIn};
use tandem::prelude::*;

#[derive(Clone, Debug, PartialEq)]
struct Click {
    time: u64,
    arm: &'static str,
    clicked: bool,
    cost: f64,
}

fn click(time: u64, arm: &'static str, clicked: bool) -> Click {
    Click {
        time,
        arm,
        clicked,
        cost: time as f64 / 1000.0,
    }
}

struct Args<K, V> {
    input: Vec<Click>,
    out: Collector<Combined<K, V>>,
}

impl<K, V> Args<K, V> {
    fn new(input: Vec<Click>) -> Self {
        Self {
            input,
            out: Collector::new(),
        }
    }
}

pipeline! {
    CtrPerMinute(args: Args<String, CtrStats>) {
        read(Memory::new(args.input.clone()))
            -> window(Fixed::minutes(1).allowed_lateness(Duration::from_secs(10)), |c: &Click| c.time)
            -> combine_per_key(|c: &Click| c.arm.to_string(), Ctr::of(|c: &Click| c.clicked))
            -> write(args.out.clone());
    }
}

const MIN: u64 = 60_000;

#[test]
fn fixed_windows_emit_one_result_per_window_and_key_in_order() {
    let input = vec![
        click(1_000, "b", true),
        click(2_000, "a", false),
        click(30_000, "a", true),
        click(MIN + 5, "a", true),
        click(MIN + 6, "b", false),
        click(3 * MIN, "a", false),
    ];
    let args = Args::new(input);
    let summary = run_checked::<CtrPerMinute>(&args);
    let got: Vec<_> = args
        .out
        .take()
        .into_iter()
        .map(|c| (c.window.start, c.key, c.value.impressions, c.value.clicks))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, "a", 2, 1),
            (0, "b", 1, 1),
            (MIN as i64, "a", 1, 1),
            (MIN as i64, "b", 1, 0),
            (3 * MIN as i64, "a", 1, 0),
        ]
        .into_iter()
        .map(|(start, key, n, clicks)| (start, key.to_owned(), n, clicks))
        .collect::<Vec<_>>()
    );
    let combine = summary.stage(2);
    assert_eq!((combine.input, combine.output), (6, 5));
}

#[test]
fn the_ctr_interval_is_wilsons() {
    let mut input: Vec<Click> = (0..100).map(|i| click(i, "a", i % 10 == 0)).collect();
    input.push(click(10, "b", false));
    let args = Args::new(input);
    run_checked::<CtrPerMinute>(&args);
    let out = args.out.take();
    let a = out[0].value;
    assert_eq!((a.impressions, a.clicks, a.rate), (100, 10, 0.1));
    // Wilson 95% for 10/100: [0.0552, 0.1744].
    assert!(
        (a.low - 0.05523).abs() < 1e-4 && (a.high - 0.17437).abs() < 1e-4,
        "{a:?}"
    );
    let b = out[1].value;
    assert_eq!((b.impressions, b.clicks, b.rate, b.low), (1, 0, 0.0, 0.0));
    assert!((b.high - 0.7935).abs() < 1e-3, "{b:?}");
}

#[test]
fn elements_within_the_lateness_count_and_later_ones_are_dead_letters() {
    let input = vec![
        click(50_000, "a", false),
        click(MIN + 5_000, "a", false), // watermark: MIN - 5s; window [0, MIN) still open
        click(55_000, "a", true),       // 10s late, within the lateness: counted
        click(MIN + 20_000, "a", false), // watermark: MIN + 10s; [0, MIN) closes
        click(59_000, "a", true),       // its window is closed: dead letter
    ];
    let args = Args::new(input);
    let config = RunConfig {
        dead_letters: DeadLetterTarget::Memory,
        ..RunConfig::default()
    };
    let summary = tandem::job::run_pipeline::<CtrPerMinute>(&args, &config).unwrap();
    let got: Vec<_> = args
        .out
        .take()
        .into_iter()
        .map(|c| (c.window.start, c.value.impressions, c.value.clicks))
        .collect();
    assert_eq!(got, vec![(0, 2, 1), (MIN as i64, 2, 0)]);
    assert_eq!(summary.dead_letters.len(), 1);
    let dead = &summary.dead_letters[0];
    assert_eq!(dead.position, 5);
    assert!(dead.error.starts_with("too late"), "{}", dead.error);
    assert!(dead.error.contains("[0, 60000) ms"), "{}", dead.error);
}

pipeline! {
    SlidingSums(args: Args<String, f64>) {
        read(Memory::new(args.input.clone()))
            -> window(Sliding::new(Duration::from_secs(30), Duration::from_secs(10)), |c: &Click| Duration::from_millis(c.time))
            -> combine_per_key(|c: &Click| c.arm.to_string(), Sum::of(|c: &Click| c.cost))
            -> write(args.out.clone());
    }
}

#[test]
fn sliding_windows_copy_each_element_into_each_of_its_windows() {
    let args = Args::new(vec![click(25_000, "a", false), click(31_000, "a", false)]);
    let summary = run_checked::<SlidingSums>(&args);
    let got: Vec<_> = args
        .out
        .take()
        .into_iter()
        .map(|c| (c.window.start / 1000, c.window.end / 1000, c.value))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 30, 25.0),
            (10, 40, 56.0),
            (20, 50, 56.0),
            (30, 60, 31.0)
        ]
    );
    let window = summary.stage(1);
    assert_eq!((window.input, window.output, window.created), (2, 6, 4));
}

/// A user combiner: the distinct arms seen, in order.
struct Arms;

impl Combiner<Click> for Arms {
    type Acc = std::collections::BTreeSet<String>;
    type Out = Vec<String>;
    fn create(&self) -> Self::Acc {
        Default::default()
    }
    fn add(&self, acc: &mut Self::Acc, item: Click) {
        acc.insert(item.arm.to_owned());
    }
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        acc.extend(other);
    }
    fn extract(&self, acc: Self::Acc) -> Vec<String> {
        acc.into_iter().collect()
    }
}

pipeline! {
    UserCombiner(args: Args<bool, Vec<String>>) {
        read(Memory::new(args.input.clone()))
            -> window(Fixed::seconds(10), |c: &Click| c.time)
            -> combine_per_key(|c: &Click| c.clicked, Arms)
            -> write(args.out.clone());
    }
}

#[test]
fn user_combiners_plug_in() {
    let args = Args::new(vec![
        click(1, "b", true),
        click(2, "a", true),
        click(3, "c", false),
        click(4, "a", true),
    ]);
    run_checked::<UserCombiner>(&args);
    let got: Vec<_> = args
        .out
        .take()
        .into_iter()
        .map(|c| (c.key, c.value))
        .collect();
    assert_eq!(
        got,
        vec![
            (false, vec!["c".into()]),
            (true, vec!["a".into(), "b".into()])
        ]
    );
}

pipeline! {
    Panicky(args: Args<String, u64>) {
        read(Memory::new(args.input.clone()))
            -> window(Fixed::seconds(10), |c: &Click| if c.time == 13 { panic!("no clock") } else { c.time })
            -> combine_per_key(|c: &Click| if c.time == 14 { panic!("no key") } else { c.arm.to_string() }, Count)
            -> write(args.out.clone());
    }
}

#[test]
fn a_panicking_time_or_key_function_dead_letters_only_its_element() {
    let args = Args::new((10..16).map(|t| click(t, "a", false)).collect());
    let config = RunConfig {
        dead_letters: DeadLetterTarget::Memory,
        ..RunConfig::default()
    };
    let summary = tandem::job::run_pipeline::<Panicky>(&args, &config).unwrap();
    let got: Vec<_> = args.out.take().into_iter().map(|c| c.value).collect();
    assert_eq!(got, vec![4]);
    let mut errors: Vec<_> = summary
        .dead_letters
        .iter()
        .map(|d| (d.position, d.error.clone()))
        .collect();
    errors.sort();
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0].1.contains("no clock") && errors[1].1.contains("no key"),
        "{errors:?}"
    );
}

struct TwoArms {
    fast: Vec<Click>,
    slow: Vec<Click>,
    out: Collector<Combined<String, u64>>,
}

pipeline! {
    /// Two arms merged before the window; the second is slowed down, so the first runs ahead.
    MergedThenWindowed(args: TwoArms) {
        fast = read(Memory::new(args.fast.clone()));
        slow = read(Memory::new(args.slow.clone()))
            -> map(|c: Click| { std::thread::sleep(Duration::from_micros(200)); c });
        merge(fast, slow)
            -> window(Fixed::minutes(5), |c: &Click| c.time)
            -> combine_per_key(|c: &Click| c.arm.to_string(), Count)
            -> write(args.out.clone());
    }
}

#[test]
fn behind_a_merge_a_fast_input_does_not_close_the_windows_of_a_slow_one() {
    let arm = |name: &'static str| (0..600).map(|m| click(m * MIN, name, false)).collect();
    let args = TwoArms {
        fast: arm("fast"),
        slow: arm("slow"),
        out: Collector::new(),
    };
    // Small batches, so the fast input reaches the merge far ahead of the slow one.
    let config = RunConfig {
        batch_size: 8,
        dead_letters: DeadLetterTarget::Memory,
        ..RunConfig::default()
    };
    let summary = tandem::job::run_pipeline::<MergedThenWindowed>(&args, &config).unwrap();
    assert!(
        summary.dead_letters.is_empty(),
        "{:?}",
        summary.dead_letters.first()
    );
    let out = args.out.take();
    assert_eq!(out.len(), 2 * 120, "120 windows of 5 minutes per arm");
    assert!(
        out.iter().all(|c| c.value == 5),
        "5 clicks per window and arm"
    );
    // Windows are emitted in order of their end.
    assert!(out.windows(2).all(|w| w[0].window.end <= w[1].window.end));
}

/// Set once a given window's result has come out of `combine_per_key`.
#[derive(Clone, Default)]
struct Seen(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Seen {
    fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Waits up to `limit` for it to be set; whether it was.
    fn wait(&self, limit: Duration) -> bool {
        let until = std::time::Instant::now() + limit;
        while std::time::Instant::now() < until {
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }
}

struct EndedArgs {
    short: Vec<Click>,
    /// The long arm's clicks: minute 40 is only given out once `seen` is set.
    long: std::sync::Mutex<Option<Box<dyn Iterator<Item = Click> + Send>>>,
    seen: Seen,
    waited: std::sync::Arc<std::sync::atomic::AtomicBool>,
    out: Collector<Combined<String, u64>>,
}

impl EndedArgs {
    /// Sets `seen` when the long arm's window [20, 25) min comes out.
    fn watch(&self, c: &Combined<String, u64>) {
        if c.key == "long" && c.window.start == 20 * MIN as i64 {
            self.seen.set();
        }
    }
}

pipeline! {
    /// A short arm that ends early and a long one, merged before the window.
    ShortAndLong(args: EndedArgs) {
        short = read(Memory::new(args.short.clone()));
        long = read(Memory::new(args.long.lock().unwrap().take().unwrap()));
        merge(short, long)
            -> window(Fixed::minutes(5), |c: &Click| c.time)
            -> combine_per_key(|c: &Click| c.arm.to_string(), Count)
            -> inspect(|c: &Combined<String, u64>| args.watch(c))
            -> write(args.out.clone());
    }
}

pipeline! {
    /// The same, with a model between the merge and the window.
    ShortAndLongThroughAModel(args: EndedArgs) {
        short = read(Memory::new(args.short.clone()));
        long = read(Memory::new(args.long.lock().unwrap().take().unwrap()));
        merge(short, long)
            -> run_inference(StandIn::new("echo", 4, |clicks: Vec<Click>| clicks))
            -> map(|p: PredictionResult<Click, Click>| p.inference)
            -> window(Fixed::minutes(5), |c: &Click| c.time)
            -> combine_per_key(|c: &Click| c.arm.to_string(), Count)
            -> inspect(|c: &Combined<String, u64>| args.watch(c))
            -> write(args.out.clone());
    }
}

#[test]
fn a_source_that_has_ended_no_longer_holds_the_watermark_back() {
    released_by_the_short_arms_end::<ShortAndLong>();
}

#[test]
fn the_end_of_a_source_crosses_a_model_stage_after_its_results() {
    released_by_the_short_arms_end::<ShortAndLongThroughAModel>();
}

fn released_by_the_short_arms_end<P: Pipeline<Args = EndedArgs>>() {
    let seen = Seen::default();
    let waited = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (gate, flag) = (seen.clone(), waited.clone());
    // The long arm stops at minute 40 until the window [20, 25) min of its clicks has come out:
    // that can only happen if the short arm's end released the watermark, which would otherwise
    // stay at the short arm's last time (minute 9) until the input ends.
    let long = (0..60u64).map(move |m| {
        if m == 40 {
            flag.store(
                gate.wait(Duration::from_secs(20)),
                std::sync::atomic::Ordering::SeqCst,
            );
        }
        click(m * MIN, "long", false)
    });
    let args = EndedArgs {
        short: (0..10).map(|m| click(m * MIN, "short", false)).collect(),
        long: std::sync::Mutex::new(Some(Box::new(long))),
        seen,
        waited,
        out: Collector::new(),
    };
    let config = RunConfig {
        batch_size: 8,
        dead_letters: DeadLetterTarget::Memory,
        ..RunConfig::default()
    };
    let summary = tandem::job::run_pipeline::<P>(&args, &config).unwrap();
    assert!(summary.dead_letters.is_empty(), "{summary}");
    assert!(
        args.waited.load(std::sync::atomic::Ordering::SeqCst),
        "the window [20, 25) min was not emitted before the input ended"
    );
    let out = args.out.take();
    assert_eq!(
        out.len(),
        2 + 12,
        "2 windows of the short arm, 12 of the long"
    );
    assert!(out.iter().all(|c| c.value == 5));
}
