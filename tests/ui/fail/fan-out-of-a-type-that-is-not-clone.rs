use tandem::prelude::*;

struct Frame {
    pixels: Vec<u8>,
}

pipeline! {
    TwoReaders(args: Collector<usize>) {
        frames = read(Memory::new(vec![Frame { pixels: vec![0; 4] }]));
        frames -> map(|f: Frame| f.pixels.len()) -> write(args.clone());
        frames -> drop();
    }
}

fn main() {}
