use tandem::prelude::*;

pipeline! {
    NoArgs {
        read(Memory::new(1..=3u32)) -> map(|x| x * 2) -> drop();
    }
}

fn main() {
    let summary = NoArgs::run_blocking(&Default::default(), &RunConfig::default()).unwrap();
    assert_eq!(summary.totals().dropped, 3);
}
