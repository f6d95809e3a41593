use tandem::prelude::*;

pipeline! {
    NotAPredicate(args: Collector<u32>) {
        read(Memory::new(vec![1u32])) -> filter(|x: &u32| *x % 2) -> write(args.clone());
    }
}

fn main() {}
