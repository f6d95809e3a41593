use tandem::prelude::*;

/// A key without `Serialize`/`Deserialize`: on several workers it could not travel to the
/// worker owning it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Arm(u8);

pipeline! {
    PerArm(args: Collector<Combined<Arm, u64>>) {
        read(Memory::new(vec![(1u64, Arm(0)), (2, Arm(1))]))
            -> window(Fixed::seconds(1), |x: &(u64, Arm)| x.0)
            -> combine_per_key(|x: &(u64, Arm)| x.1, Count)
            -> write(args.clone());
    }
}

fn main() {}
