//! Choosing an arm for `partition`: by a stable hash of a key (`split_by`), at random with a seed
//! (`split_random`), or by any `FnMut(&T) -> usize`.

use crate::checks::{check, Fits, Misfit, Unreachable};
use crate::hash::StableKey;

/// Picks the arm (0-based) of each element of a `partition` with `ARMS` outputs.
#[diagnostic::on_unimplemented(
    message = "`partition` binds {ARMS} streams, but `{Self}` cannot split `{T}` into {ARMS} arms",
    label = "this partitioner does not fit",
    note = "use `split_by(|x: &{T}| key, [..])` or `split_random(seed, [..])` with one ratio per bound stream, or a closure `|x: &{T}| -> usize`"
)]
pub trait Partitioner<T, const ARMS: usize>: Send {
    fn arm(&mut self, item: &T) -> usize;
}

impl<T, F, const ARMS: usize> Partitioner<T, ARMS> for F
where
    F: FnMut(&T) -> usize + Send,
{
    #[inline(always)]
    fn arm(&mut self, item: &T) -> usize {
        self(item)
    }
}

/// Cumulative ratios, so that a uniform draw in `0..total` picks an arm.
#[derive(Clone, Debug)]
struct Ratios<const N: usize> {
    bounds: [u64; N],
    total: u64,
}

impl<const N: usize> Ratios<N> {
    fn new(ratios: [u32; N]) -> Self {
        assert!(N > 0, "a partition needs at least one arm");
        let mut bounds = [0u64; N];
        let mut total = 0u64;
        for (bound, ratio) in bounds.iter_mut().zip(ratios) {
            total += u64::from(ratio);
            *bound = total;
        }
        assert!(total > 0, "partition ratios must not all be zero");
        Self { bounds, total }
    }

    /// Maps a uniform 32-bit value onto an arm by multiply-shift (no modulo bias to speak of).
    #[inline(always)]
    fn pick(&self, draw: u32) -> usize {
        let point = (u64::from(draw) * self.total) >> 32;
        self.bounds.iter().position(|&b| point < b).unwrap_or(N - 1)
    }
}

/// Partitions by a stable hash of `key(element)` in the proportions of `ratios`: the same key
/// always lands in the same arm (a user stays in their arm of an A/B test).
///
/// ```text
/// [champion, challenger] = requests -> partition(split_by(|r: &Request| r.user_id, [50, 50]));
/// ```
pub fn split_by<T, K, F, M, const N: usize>(
    key: F,
    ratios: [u32; N],
) -> <K as SplitKey<M>>::Pass<SplitBy<F, N>>
where
    F: FnMut(&T) -> K,
    K: SplitKey<M>,
{
    K::pass(SplitBy {
        key,
        ratios: Ratios::new(ratios),
    })
}

check! {
    /// A key that `split_by` can hash stably (see [`StableKey`]).
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be used as a `split_by` key",
        label = "the key function returns `{Self}`",
        note = "keys must implement `tandem::prelude::StableKey` (integers, strings, `bool`, `char`, and tuples of those do); implement it for your type or return one of those"
    )]
    trait SplitKey<> for K where [K: StableKey] {}
}

/// See [`split_by`].
pub struct SplitBy<F, const N: usize> {
    key: F,
    ratios: Ratios<N>,
}

impl<T, K, F, const N: usize> Partitioner<T, N> for SplitBy<F, N>
where
    F: FnMut(&T) -> K + Send,
    K: StableKey,
{
    #[inline(always)]
    fn arm(&mut self, item: &T) -> usize {
        self.ratios.pick((self.key)(item).stable_hash())
    }
}

/// Partitions at random in the proportions of `ratios`, reproducibly for a given `seed`.
pub fn split_random<const N: usize>(seed: u64, ratios: [u32; N]) -> SplitRandom<N> {
    SplitRandom {
        state: seed,
        ratios: Ratios::new(ratios),
    }
}

/// See [`split_random`].
pub struct SplitRandom<const N: usize> {
    state: u64,
    ratios: Ratios<N>,
}

impl<const N: usize> SplitRandom<N> {
    /// SplitMix64: tiny, fast and statistically sound for this use; not worth a dependency.
    #[inline(always)]
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl<T, const N: usize> Partitioner<T, N> for SplitRandom<N> {
    #[inline(always)]
    fn arm(&mut self, _: &T) -> usize {
        let draw = (self.next() >> 32) as u32;
        self.ratios.pick(draw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_pick_every_arm_in_order() {
        let r = Ratios::new([1, 1, 2]);
        assert_eq!(r.pick(0), 0);
        assert_eq!(r.pick(u32::MAX / 4 + 1), 1);
        assert_eq!(r.pick(u32::MAX / 2 + 1), 2);
        assert_eq!(r.pick(u32::MAX), 2);
    }

    #[test]
    fn zero_ratio_arm_gets_nothing() {
        let mut s = split_random(7, [0, 1]);
        assert!((0..1000).all(|_| Partitioner::<(), 2>::arm(&mut s, &()) == 1));
    }
}
