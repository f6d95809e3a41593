use tandem::prelude::*;

pipeline! {
    Dangling(args: Collector<u32>) {
        read(Memory::new(vec![1u32])) -> map(|x: u32| x + 1);
    }
}

fn main() {}
