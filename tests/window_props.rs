//! Properties of windows and combiners: every element lands in exactly the windows that contain
//! its time, merging accumulators is associative and equals adding one by one, and a pipeline's
//! results do not depend on the arrival order as long as no element is later than the allowed
//! lateness, nor on the number of workers the run is split across.

use std::time::Duration;

use proptest::prelude::*;
use tandem::prelude::*;
use tandem::window::{Combiner, CtrStats};

proptest! {
    #[test]
    fn a_fixed_window_contains_its_time_and_tiles_the_line(time in -1_000_000i64..1_000_000, size in 1u64..100_000) {
        let w = Fixed::millis(size).window_of(time);
        prop_assert!(w.contains(time));
        prop_assert_eq!(w.end - w.start, size as i64);
        prop_assert_eq!(w.start.rem_euclid(size as i64), 0);
    }

    #[test]
    fn sliding_windows_are_exactly_those_containing_the_time(
        time in -1_000_000i64..1_000_000,
        period in 1i64..5_000,
        periods in 1i64..8,
    ) {
        let size = period * periods;
        let spec = Sliding::new(Duration::from_millis(size as u64), Duration::from_millis(period as u64));
        let windows: Vec<Window> = spec.windows_of(time).collect();
        prop_assert_eq!(windows.len() as i64, periods);
        for w in &windows {
            prop_assert!(w.contains(time), "{w} does not contain {time}");
            prop_assert_eq!(w.start.rem_euclid(period), 0);
            prop_assert_eq!(w.end - w.start, size);
        }
        prop_assert!(windows.windows(2).all(|p| p[1].start - p[0].start == period));
        // Nothing containing `time` was missed on either side.
        let before = Window { start: windows[0].start - period, end: windows[0].end - period };
        prop_assert!(!before.contains(time));
        let after = windows[windows.len() - 1].start + period;
        prop_assert!(after > time);
    }
}

/// Adds `items` one by one into a fresh accumulator.
fn fold<T: Clone, C: Combiner<T>>(c: &C, items: &[T]) -> C::Acc {
    let mut acc = c.create();
    for x in items {
        c.add(&mut acc, x.clone());
    }
    acc
}

/// `merge(merge(a, b), c)`, `merge(a, merge(b, c))` and adding everything in one go agree.
fn check_merge<T: Clone, C: Combiner<T>>(c: &C, a: &[T], b: &[T], d: &[T]) -> [C::Out; 3] {
    let mut left = fold(c, a);
    c.merge(&mut left, fold(c, b));
    c.merge(&mut left, fold(c, d));
    let mut right = fold(c, b);
    c.merge(&mut right, fold(c, d));
    let mut right_outer = fold(c, a);
    c.merge(&mut right_outer, right);
    let all: Vec<T> = a.iter().chain(b).chain(d).cloned().collect();
    [
        c.extract(left),
        c.extract(right_outer),
        c.extract(fold(c, &all)),
    ]
}

// Integer-valued floats, so sums are exact whatever the order.
fn values() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec((-1000i32..1000).prop_map(f64::from), 0..20)
}

proptest! {
    #[test]
    fn merge_is_associative_and_equals_adding(a in values(), b in values(), d in values()) {
        let id = |x: &f64| *x;
        let [x, y, z] = check_merge(&Count, &a, &b, &d);
        prop_assert!(x == y && y == z);
        let [x, y, z] = check_merge(&Sum::of(id), &a, &b, &d);
        prop_assert!(x == y && y == z);
        let [x, y, z] = check_merge(&Min::of(id), &a, &b, &d);
        prop_assert!(x.total_cmp(&y).is_eq() && y.total_cmp(&z).is_eq());
        let [x, y, z] = check_merge(&Max::of(id), &a, &b, &d);
        prop_assert!(x.total_cmp(&y).is_eq() && y.total_cmp(&z).is_eq());
        let [x, y, z] = check_merge(&Mean::of(id), &a, &b, &d);
        prop_assert!(x.total_cmp(&y).is_eq() && y.total_cmp(&z).is_eq());
        let [x, y, z] = check_merge(&Ctr::of(|x: &f64| *x > 0.0), &a, &b, &d);
        prop_assert!(x == y && y == z);
        // TopK: the same scores (which of two equal scores is kept may differ).
        let [x, y, z] = check_merge(&TopK::of(3, id), &a, &b, &d);
        prop_assert!(x == y && y == z, "{x:?} {y:?} {z:?}");
    }
}

#[test]
fn top_k_keeps_the_best_first() {
    let c = TopK::of(3, |x: &f64| *x);
    let acc = fold(&c, &[4.0, 9.0, 1.0, 7.0, 9.5, 2.0]);
    assert_eq!(c.extract(acc), vec![9.5, 9.0, 7.0]);
    let stats: CtrStats = Combiner::<bool>::extract(&Ctr::of(|b: &bool| *b), (4, 1));
    assert_eq!((stats.impressions, stats.clicks, stats.rate), (4, 1, 0.25));
}

#[derive(Clone, Debug)]
struct Event {
    time: i64,
    key: u8,
    value: i32,
}

struct Args {
    events: Vec<Event>,
    out: Collector<Combined<u8, (u64, f64)>>,
}

/// Count and sum per key, as one combiner.
struct CountSum;

impl Combiner<Event> for CountSum {
    type Acc = (u64, f64);
    type Out = (u64, f64);
    fn create(&self) -> (u64, f64) {
        (0, 0.0)
    }
    fn add(&self, acc: &mut (u64, f64), e: Event) {
        acc.0 += 1;
        acc.1 += f64::from(e.value);
    }
    fn merge(&self, acc: &mut (u64, f64), other: (u64, f64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
    fn extract(&self, acc: (u64, f64)) -> (u64, f64) {
        acc
    }
}

const LATENESS_MS: u64 = 5_000;

pipeline! {
    Windowed(args: Args) {
        read(Memory::new(args.events.clone()))
            -> window(Sliding::new(Duration::from_secs(10), Duration::from_secs(5)).allowed_lateness(Duration::from_millis(LATENESS_MS)), |e: &Event| e.time)
            -> combine_per_key(|e: &Event| e.key, CountSum)
            -> write(args.out.clone());
    }
}

/// Runs the events on `workers` workers (threads, split by timely with an exchange by key
/// before `combine_per_key` when more than one).
fn run(events: Vec<Event>, workers: usize) -> Vec<Combined<u8, (u64, f64)>> {
    let args = Args {
        events,
        out: Collector::new(),
    };
    let config = RunConfig {
        cluster: tandem::cluster::Cluster::threads(workers),
        ..RunConfig::default()
    };
    let summary = tandem::job::run_pipeline::<Windowed>(&args, &config).unwrap();
    assert_eq!(summary.totals().dead, 0, "{summary}");
    assert!(summary.totals().balanced(), "{summary}");
    args.out.take()
}

fn events() -> impl Strategy<Value = Vec<(Event, u64)>> {
    let event = (0i64..120_000, 0u8..4, -100i32..100, 0..=LATENESS_MS)
        .prop_map(|(time, key, value, delay)| (Event { time, key, value }, delay));
    prop::collection::vec(event, 0..200)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Each event arrives after a delay of at most the allowed lateness: then none is too late,
    /// and the results are those of the events in time order on one worker — in the same order
    /// on one worker; on several (each reads every n-th event, and each key's results come out
    /// of the worker owning it) the same set.
    #[test]
    fn results_do_not_depend_on_arrival_order_within_the_lateness(events in events(), workers in 1usize..=4) {
        let mut in_order: Vec<Event> = events.iter().map(|(e, _)| e.clone()).collect();
        in_order.sort_by_key(|e| e.time);
        let mut arrivals = events;
        arrivals.sort_by_key(|(e, delay)| e.time + *delay as i64);
        let mut shuffled = run(arrivals.into_iter().map(|(e, _)| e).collect(), workers);
        let mut expected = run(in_order, 1);
        if workers > 1 {
            let by_window_and_key = |c: &Combined<u8, (u64, f64)>| (c.window, c.key);
            shuffled.sort_by_key(by_window_and_key);
            expected.sort_by_key(by_window_and_key);
        }
        prop_assert_eq!(shuffled, expected);
    }
}
