use tandem::prelude::*;

struct Click {
    user: u64,
}

struct Request {
    user: u64,
}

pipeline! {
    WrongInput(args: Collector<u64>) {
        clicks = read(Memory::new(vec![Click { user: 1 }]));
        clicks -> map(|r: Request| r.user) -> write(args.clone());
    }
}

fn main() {}
