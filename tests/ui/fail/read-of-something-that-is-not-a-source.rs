use tandem::prelude::*;

pipeline! {
    NotASource(args: Collector<u32>) {
        read(vec![1u32, 2, 3]) -> write(args.clone());
    }
}

fn main() {}
