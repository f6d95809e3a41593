use tandem::prelude::*;

pipeline! {
    WriteThenMap(args: Collector<u32>) {
        read(Memory::new(vec![1u32])) -> write(args.clone()) -> map(|x: u32| x + 1);
    }
}

fn main() {}
