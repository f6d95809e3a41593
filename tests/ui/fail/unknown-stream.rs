use tandem::prelude::*;

pipeline! {
    Typo(args: Collector<u32>) {
        requests = read(Memory::new(vec![1u32, 2, 3]));
        reqeusts -> write(args.clone());
    }
}

fn main() {}
