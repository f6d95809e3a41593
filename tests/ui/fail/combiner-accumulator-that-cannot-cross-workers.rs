use tandem::prelude::*;
use tandem::window::Combiner;

/// An accumulator without `Serialize`/`Deserialize`: on several workers it could not travel to
/// the worker owning its key.
#[derive(Default)]
struct Seen(Vec<u64>);

struct Distinct;

impl Combiner<u64> for Distinct {
    type Acc = Seen;
    type Out = usize;
    fn create(&self) -> Seen {
        Seen::default()
    }
    fn add(&self, acc: &mut Seen, x: u64) {
        acc.0.push(x);
    }
    fn merge(&self, acc: &mut Seen, other: Seen) {
        acc.0.extend(other.0);
    }
    fn extract(&self, mut acc: Seen) -> usize {
        acc.0.sort();
        acc.0.dedup();
        acc.0.len()
    }
}

pipeline! {
    DistinctPerKey(args: Collector<Combined<u64, usize>>) {
        read(Memory::new(vec![1u64, 2, 3]))
            -> window(Fixed::seconds(1), |x: &u64| *x)
            -> combine_per_key(|x: &u64| x % 2, Distinct)
            -> write(args.clone());
    }
}

fn main() {}
