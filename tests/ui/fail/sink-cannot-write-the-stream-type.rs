use tandem::prelude::*;

pipeline! {
    WrongSink(args: Collector<String>) {
        read(Memory::new(vec![1u64, 2])) -> map(|x| x * 2) -> write(args.clone());
    }
}

fn main() {}
