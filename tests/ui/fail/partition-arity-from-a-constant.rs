use tandem::prelude::*;

const RATIOS: [u32; 2] = [50, 50];

pipeline! {
    HiddenArity(args: Collector<u64>) {
        [a, b, c] = read(Memory::new(0..10u64)) -> partition(split_by(|x: &u64| *x, RATIOS));
        merge(a, b, c) -> write(args.clone());
    }
}

fn main() {}
