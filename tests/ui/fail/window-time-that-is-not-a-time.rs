use tandem::prelude::*;

struct Click {
    at: String,
}

pipeline! {
    Clocks(args: Collector<Combined<u8, u64>>) {
        read(Memory::new(vec![Click { at: "noon".into() }]))
            -> window(Fixed::minutes(5), |c: &Click| c.at.clone())
            -> combine_per_key(|_: &Click| 0u8, Count)
            -> write(args.clone());
    }
}

fn main() {}
