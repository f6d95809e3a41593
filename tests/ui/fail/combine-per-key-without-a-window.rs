use tandem::prelude::*;

pipeline! {
    Unwindowed(args: Collector<Combined<u32, u64>>) {
        read(Memory::new(vec![1u32, 2, 3]))
            -> combine_per_key(|x: &u32| x % 2, Count)
            -> write(args.clone());
    }
}

fn main() {}
