// mistakes: 3 (a misspelled stage, a misspelled stream, a stream never consumed)
use tandem::prelude::*;

pipeline! {
    ManyMistakes(args: Collector<u32>) {
        nums = read(Memory::new(vec![1u32]));
        unused = nums -> map(|x: u32| x + 1);
        numz -> write(args.clone());
        nums -> mapp(|x: u32| x) -> drop();
    }
}

fn main() {}
