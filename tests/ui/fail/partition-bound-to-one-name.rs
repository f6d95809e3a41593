use tandem::prelude::*;

pipeline! {
    OneName(args: Collector<u64>) {
        arms = read(Memory::new(0..10u64)) -> partition(split_by(|x: &u64| *x, [50, 50]));
        arms -> write(args.clone());
    }
}

fn main() {}
