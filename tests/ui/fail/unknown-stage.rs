use tandem::prelude::*;

pipeline! {
    Misspelt(args: Collector<u32>) {
        read(Memory::new(vec![1u32])) -> fliter(|x: &u32| *x > 0) -> write(args.clone());
    }
}

fn main() {}
