use tandem::prelude::*;

pipeline! {
    Twice(args: Collector<u32>) {
        nums = read(Memory::new(vec![1u32]));
        nums = read(Memory::new(vec![2u32]));
        nums -> write(args.clone());
    }
}

fn main() {}
