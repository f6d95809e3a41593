use tandem::prelude::*;

pipeline! {
    ThreeNamesTwoRatios(args: Collector<u64>) {
        [a, b, c] = read(Memory::new(0..10u64)) -> partition(split_by(|x: &u64| *x, [50, 50]));
        merge(a, b, c) -> write(args.clone());
    }
}

fn main() {}
