use tandem::prelude::*;

#[derive(Debug)]
struct Oops;

pipeline! {
    OpaqueError(args: Collector<u32>) {
        read(Memory::new(vec![1u32])) -> try_map(|x: u32| if x > 0 { Ok(x) } else { Err(Oops) }) -> write(args.clone());
    }
}

fn main() {}
