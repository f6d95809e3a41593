use tandem::prelude::*;

#[derive(Clone, Copy)]
struct UserId(u64);

pipeline! {
    UnhashableKey(args: Collector<UserId>) {
        [a, b] = read(Memory::new(vec![UserId(1)])) -> partition(split_by(|u: &UserId| *u, [50, 50]));
        merge(a, b) -> write(args.clone());
    }
}

fn main() {}
