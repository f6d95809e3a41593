use tandem::prelude::*;

pipeline! {
    Loop(args: Collector<u32>) {
        seed = read(Memory::new(vec![1u32]));
        a = merge(seed, b) -> map(|x: u32| x + 1);
        b = a -> filter(|x: &u32| *x < 10);
        a -> write(args.clone());
    }
}

fn main() {}
