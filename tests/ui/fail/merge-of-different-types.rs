use tandem::prelude::*;

pipeline! {
    MixedMerge(args: Collector<u64>) {
        numbers = read(Memory::new(vec![1u64]));
        words = read(Memory::new(vec![String::from("one")]));
        merge(numbers, words) -> write(args.clone());
    }
}

fn main() {}
