use tandem::prelude::*;

pipeline! {
    Forgotten(args: Collector<u32>) {
        nums = read(Memory::new(vec![1u32, 2, 3]));
        doubled = nums -> map(|x| x * 2);
    }
}

fn main() {}
