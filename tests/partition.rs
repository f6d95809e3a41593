//! `split_by` is sticky (the same key always lands in the same arm, in every run) and keeps its
//! ratios; `split_random` is reproducible for a seed.

use proptest::prelude::*;
use tandem::prelude::*;

struct Args {
    keys: Vec<u64>,
    ratios: [u32; 3],
    arms: [Collector<u64>; 3],
}

pipeline! {
    Split(args: Args) {
        [a, b, c] = read(Memory::new(args.keys.clone())) -> partition(split_by(|k: &u64| *k, args.ratios));
        a -> write(args.arms[0].clone());
        b -> write(args.arms[1].clone());
        c -> write(args.arms[2].clone());
    }
}

fn split(keys: Vec<u64>, ratios: [u32; 3]) -> [Vec<u64>; 3] {
    let args = Args {
        keys,
        ratios,
        arms: Default::default(),
    };
    Split::run_blocking(&args, &RunConfig::default()).unwrap();
    args.arms.each_ref().map(|c| c.take())
}

#[test]
fn ratios_hold_within_one_percent_over_100k_keys() {
    for ratios in [[50, 50, 0], [10, 30, 60], [1, 1, 1], [90, 5, 5]] {
        let arms = split((0..100_000).collect(), ratios);
        let total: u32 = ratios.iter().sum();
        for (arm, ratio) in arms.iter().zip(ratios) {
            let expected = f64::from(ratio) / f64::from(total);
            let got = arm.len() as f64 / 100_000.0;
            assert!(
                (got - expected).abs() < 0.01,
                "ratios {ratios:?}: arm got {got:.4}, expected {expected:.4}"
            );
        }
    }
}

#[test]
fn the_same_key_always_lands_in_the_same_arm() {
    // Every user appears 5 times, interleaved; all 5 land together, and again in a second run.
    let keys: Vec<u64> = (0..5).flat_map(|_| 0..2000).collect();
    let first = split(keys.clone(), [50, 50, 0]);
    for arm in &first {
        let mut counts = std::collections::HashMap::new();
        for k in arm {
            *counts.entry(k).or_insert(0) += 1;
        }
        assert!(counts.values().all(|&c| c == 5));
    }
    assert_eq!(split(keys, [50, 50, 0]), first);
}

#[test]
fn the_arm_of_a_key_is_fixed_forever() {
    // Pinned: changing the hash would move live users between arms of running experiments.
    let arms = split((0..10).collect(), [50, 50, 0]);
    assert_eq!(arms[0], [2, 3, 6, 7]);
    assert_eq!(arms[1], [0, 1, 4, 5, 8, 9]);
    // The documented mapping: CRC32 of the decimal key, scaled onto the ratios' total.
    let by_hand: Vec<u64> = (0..10u64)
        .filter(|k| (u64::from(crc32fast::hash(k.to_string().as_bytes())) * 100) >> 32 < 50)
        .collect();
    assert_eq!(arms[0], by_hand);
    assert_eq!(42u64.stable_hash(), crc32fast::hash(b"42"));
    assert_eq!("42".stable_hash(), 42u64.stable_hash());
}

fn random_split(seed: u64, n: u64) -> Vec<u64> {
    struct RArgs {
        seed: u64,
        n: u64,
        out: Collector<u64>,
    }
    pipeline! {
        Random(args: RArgs) {
            [kept, rest] = read(Memory::new(0..args.n)) -> partition(split_random(args.seed, [30, 70]));
            kept -> write(args.out.clone());
            rest -> drop();
        }
    }
    let args = RArgs {
        seed,
        n,
        out: Collector::new(),
    };
    Random::run_blocking(&args, &RunConfig::default()).unwrap();
    args.out.take()
}

#[test]
fn split_random_is_reproducible_for_a_seed_and_keeps_its_ratio() {
    let a = random_split(7, 100_000);
    assert_eq!(a, random_split(7, 100_000));
    assert_ne!(a, random_split(8, 100_000));
    assert!(
        (a.len() as f64 / 100_000.0 - 0.3).abs() < 0.01,
        "{}",
        a.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_key_lands_in_exactly_one_arm_and_always_the_same(
        keys in prop::collection::vec(any::<u64>(), 0..300),
        ratios in prop::array::uniform3(0u32..100).prop_filter("not all zero", |r| r.iter().any(|&x| x > 0)),
    ) {
        let arms = split(keys.clone(), ratios);
        prop_assert_eq!(arms.iter().map(Vec::len).sum::<usize>(), keys.len());
        for (arm, ratio) in arms.iter().zip(ratios) {
            if ratio == 0 {
                prop_assert!(arm.is_empty());
            }
        }
        let again = split(keys, ratios);
        prop_assert_eq!(again, arms);
    }
}
