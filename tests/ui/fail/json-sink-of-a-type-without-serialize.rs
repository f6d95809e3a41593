use tandem::prelude::*;

struct Score(f64);

pipeline! {
    NotSerialize(args: std::path::PathBuf) {
        read(Memory::new(vec![1.0f64])) -> map(Score) -> write(JsonLines::create(args));
    }
}

fn main() {}
