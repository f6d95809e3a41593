//! The element-wise stages, fan-out and merge: what each does, that order within a source is
//! kept, and that failures inside user code (an `Err`, a panic) dead-letter only the element
//! concerned. (Every run checks that its counts add up and fails if not: tests/unbalanced.rs.)

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::run_checked;
use tandem::prelude::*;

struct Args {
    n: u64,
    out: Collector<u64>,
    text: Collector<String>,
    seen: Arc<AtomicU64>,
}

impl Args {
    fn new(n: u64) -> Self {
        Self {
            n,
            out: Collector::new(),
            text: Collector::new(),
            seen: Arc::new(AtomicU64::new(0)),
        }
    }
}

pipeline! {
    Chain(args: Args) {
        read(Memory::new(0..args.n))
            -> inspect(|x: &u64| { args.seen.fetch_add(*x, Ordering::Relaxed); })
            -> map(|x| x * 3)
            -> filter(|x: &u64| x % 2 == 0)
            -> flat_map(|x| [x, x + 1])
            -> write(args.out.clone());
    }
}

#[test]
fn element_wise_stages_compose_in_order() {
    let args = Args::new(10);
    let summary = run_checked::<Chain>(&args);
    assert_eq!(args.out.take(), vec![0, 1, 6, 7, 12, 13, 18, 19, 24, 25]);
    assert_eq!(args.seen.load(Ordering::Relaxed), 45);
    let filter = summary.stage(3);
    assert_eq!((filter.input, filter.output, filter.filtered), (10, 5, 5));
    let flat = summary.stage(4);
    assert_eq!((flat.input, flat.output, flat.created), (5, 10, 5));
    assert_eq!(summary.totals().written, 10);
}

#[test]
fn order_within_a_source_is_kept_across_batches_and_channels() {
    pipeline! {
        Ordered(args: Args) {
            read(Memory::new(0..args.n)) -> map(|x| x + 1) -> write(args.out.clone());
        }
    }
    let args = Args::new(100_000);
    let config = RunConfig {
        batch_size: 7,
        channel_capacity: 2,
        ..RunConfig::default()
    };
    Ordered::run_blocking(&args, &config).unwrap();
    assert_eq!(args.out.take(), (1..=100_000).collect::<Vec<_>>());
}

pipeline! {
    Failing(args: Args) {
        read(Memory::new(0..args.n))
            -> try_map(|x: u64| if x % 5 == 3 { Err(format!("{x} is not allowed")) } else { Ok(x) })
            -> map(|x| if x == 7 { panic!("seven is unlucky") } else { x })
            -> write(args.out.clone());
    }
}

#[test]
fn errors_and_panics_in_user_code_dead_letter_only_their_element() {
    let args = Args::new(20);
    let summary = run_checked::<Failing>(&args);
    assert_eq!(
        args.out.take(),
        vec![0, 1, 2, 4, 5, 6, 9, 10, 11, 12, 14, 15, 16, 17, 19]
    );
    let dead: Vec<(u32, u64, String)> = summary
        .dead_letters
        .iter()
        .map(|d| (d.stage_id, d.position, d.error.clone()))
        .collect();
    assert_eq!(dead.len(), 5, "{dead:#?}");
    // Positions are 1-based record numbers of the source: element 3 is record 4.
    assert_eq!(
        (dead[0].0, dead[0].1, dead[0].2.as_str()),
        (1, 4, "3 is not allowed")
    );
    let panic = dead
        .iter()
        .find(|d| d.0 == 2)
        .expect("the panic is dead-lettered");
    assert_eq!(panic.1, 8);
    assert!(
        panic.2.contains("seven is unlucky") && panic.2.contains("transforms.rs"),
        "{}",
        panic.2
    );
    assert_eq!(summary.totals().dead, 5);
}

#[test]
fn a_panic_in_a_filter_or_flat_map_is_dead_lettered_too() {
    pipeline! {
        Panicky(args: Args) {
            read(Memory::new(0..args.n))
                -> filter(|x: &u64| { assert!(*x != 2, "no twos"); true })
                -> flat_map(|x: u64| (0..x).map(move |i| if x == 4 && i == 2 { panic!("mid-iteration") } else { x }))
                -> write(args.out.clone());
        }
    }
    let args = Args::new(5);
    let summary = run_checked::<Panicky>(&args);
    // 0 -> nothing, 1 -> [1], 3 -> [3, 3, 3], 4 -> [4, 4] then the panic.
    assert_eq!(args.out.take(), vec![1, 3, 3, 3, 4, 4]);
    let errors: Vec<&str> = summary
        .dead_letters
        .iter()
        .map(|d| d.error.as_str())
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0].contains("no twos") && errors[1].contains("mid-iteration"),
        "{errors:?}"
    );
}

#[test]
fn fail_fast_turns_a_user_error_into_a_failed_run() {
    let args = Args::new(20);
    let config = RunConfig {
        fail_fast: true,
        ..RunConfig::default()
    };
    match Failing::run_blocking(&args, &config) {
        Err(Error::FailFast(letter)) => assert_eq!(letter.error, "3 is not allowed"),
        other => panic!("expected fail-fast, got {other:?}"),
    }
    assert!(args.out.take().is_empty(), "a failed run commits no output");
}

pipeline! {
    /// One stream consumed by two chains, and two streams merged into one.
    FanOutMerge(args: Args) {
        nums = read(Memory::new(0..args.n));
        nums -> map(|x| x * 10) -> write(args.out.clone());
        evens = nums -> filter(|x: &u64| x % 2 == 0) -> map(|x| format!("even {x}"));
        odds = nums -> filter(|x: &u64| x % 2 == 1) -> map(|x| format!("odd {x}"));
        merge(evens, odds) -> write(args.text.clone());
    }
}

#[test]
fn fan_out_copies_every_element_to_each_consumer_and_merge_loses_none() {
    let args = Args::new(1000);
    let summary = run_checked::<FanOutMerge>(&args);
    assert_eq!(
        args.out.take(),
        (0..1000).map(|x| x * 10).collect::<Vec<_>>()
    );
    let mut text = args.text.take();
    assert_eq!(text.len(), 1000);
    // Merge interleaves its inputs but keeps the order within each.
    let evens: Vec<&String> = text.iter().filter(|t| t.starts_with("even")).collect();
    assert_eq!(evens.first().map(|s| s.as_str()), Some("even 0"));
    assert_eq!(evens.last().map(|s| s.as_str()), Some("even 998"));
    text.sort();
    text.dedup();
    assert_eq!(text.len(), 1000);
    let totals = summary.totals();
    assert_eq!(
        (totals.read, totals.created, totals.written, totals.filtered),
        (1000, 2000, 2000, 1000)
    );
}

#[test]
fn key_by_pairs_each_element_with_its_key_and_drop_counts_what_it_discards() {
    struct KArgs {
        out: Collector<(bool, u64)>,
    }
    pipeline! {
        Keyed(args: KArgs) {
            nums = read(Memory::new(1..=6u64)) -> key_by(|x: &u64| x % 3 == 0);
            [threes, rest] = nums -> partition(|kv: &(bool, u64)| usize::from(!kv.0));
            threes -> write(args.out.clone());
            rest -> drop();
        }
    }
    let args = KArgs {
        out: Collector::new(),
    };
    let summary = run_checked::<Keyed>(&args);
    assert_eq!(args.out.take(), vec![(true, 3), (true, 6)]);
    assert_eq!(summary.totals().dropped, 4);
}

#[test]
fn a_partition_function_choosing_a_missing_arm_dead_letters_the_element() {
    pipeline! {
        BadArm(args: Args) {
            [a, b] = read(Memory::new(0..args.n)) -> partition(|x: &u64| *x as usize);
            a -> write(args.out.clone());
            b -> drop();
        }
    }
    let args = Args::new(4);
    let summary = run_checked::<BadArm>(&args);
    assert_eq!(args.out.take(), vec![0]);
    assert_eq!(summary.dead_letters.len(), 2);
    assert!(summary.dead_letters[0]
        .error
        .contains("arm 2, but there are only 2 arms"));
}

#[tokio::test]
async fn run_is_async_and_the_future_is_send() {
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    pipeline! {
        Owned(args: (u64, Collector<u64>)) {
            read(Memory::new(0..args.0)) -> write(args.1.clone());
        }
    }
    let out = Collector::new();
    let summary = assert_send(Owned::run((5, out.clone()), RunConfig::default()))
        .await
        .unwrap();
    assert_eq!(out.take(), vec![0, 1, 2, 3, 4]);
    assert_eq!(summary.totals().written, 5);
}

#[test]
fn merging_two_sources_crosses_a_channel_and_keeps_each_sources_order() {
    struct MArgs {
        n: u64,
        out: Collector<(char, u64)>,
    }
    pipeline! {
        TwoSources(args: MArgs) {
            left = read(Memory::new(0..args.n)) -> map(|x| ('l', x));
            right = read(Memory::new(0..args.n)) -> filter(|x: &u64| x % 3 != 0) -> map(|x| ('r', x));
            merge(left, right) -> write(args.out.clone());
        }
    }
    for (batch_size, channel_capacity) in [(1, 1), (7, 2), (1024, 16)] {
        let args = MArgs {
            n: 20_000,
            out: Collector::new(),
        };
        let config = RunConfig {
            batch_size,
            channel_capacity,
            ..RunConfig::default()
        };
        let summary = TwoSources::run_blocking(&args, &config).unwrap();
        let out = args.out.take();
        let left: Vec<u64> = out.iter().filter(|(s, _)| *s == 'l').map(|e| e.1).collect();
        let right: Vec<u64> = out.iter().filter(|(s, _)| *s == 'r').map(|e| e.1).collect();
        assert_eq!(left, (0..20_000).collect::<Vec<_>>());
        assert_eq!(
            right,
            (0..20_000).filter(|x| x % 3 != 0).collect::<Vec<_>>()
        );
        let merge = summary.stage(5);
        assert_eq!(
            (merge.input, merge.output),
            (20_000 + right.len() as u64, 20_000 + right.len() as u64)
        );
    }
}

#[test]
fn a_panic_after_a_channel_dead_letters_that_element_and_the_batch_goes_on() {
    struct MArgs {
        out: Collector<u64>,
    }
    pipeline! {
        PanicAfterMerge(args: MArgs) {
            a = read(Memory::new(0..100u64));
            b = read(Memory::new(100..200u64));
            merge(a, b) -> map(|x| if x % 50 == 7 { panic!("bad {x}") } else { x }) -> write(args.out.clone());
        }
    }
    let args = MArgs {
        out: Collector::new(),
    };
    let config = RunConfig {
        batch_size: 16,
        ..RunConfig::default()
    };
    let summary = PanicAfterMerge::run_blocking(&args, &config).unwrap();
    let mut out = args.out.take();
    out.sort_unstable();
    assert_eq!(out, (0..200).filter(|x| x % 50 != 7).collect::<Vec<_>>());
    let mut dead: Vec<(u32, u64, bool)> = summary
        .dead_letters
        .iter()
        .map(|d| (d.stage_id, d.position, d.error.contains("bad")))
        .collect();
    dead.sort_unstable();
    // Stage 3 is the map; positions are record numbers within each source.
    assert_eq!(
        dead,
        [(3, 8, true), (3, 8, true), (3, 58, true), (3, 58, true)]
    );
}
