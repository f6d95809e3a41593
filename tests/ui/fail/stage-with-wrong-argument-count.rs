use tandem::prelude::*;

pipeline! {
    TwoClosures(args: Collector<u32>) {
        read(Memory::new(vec![1u32])) -> map(|x: u32| x + 1, |x: u32| x * 2) -> write(args.clone());
    }
}

fn main() {}
