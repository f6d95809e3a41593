//! Combiners: how `combine_per_key` folds one key's elements in one window into a value.
//!
//! A combiner is Beam's `CombineFn`: `create` an empty accumulator, `add` elements to it, `merge`
//! accumulators built apart, `extract` the result. `merge` must be associative (and `add` order
//! must not matter) so that results do not depend on the order in which elements arrive.

use serde::{Deserialize, Serialize};

/// Folds elements of type `T` into an `Out`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot combine elements of type `{T}`",
    label = "this combiner does not take `{T}`",
    note = "built-in combiners: `Count`, `Sum::of(|x: &{T}| ..)`, `Mean::of(..)`, `Min::of(..)`, `Max::of(..)`, `TopK::of(k, ..)`, `Ctr::of(|x: &{T}| clicked)`; or implement `Combiner<{T}>`"
)]
pub trait Combiner<T>: Send {
    type Acc: Send;
    type Out;
    fn create(&self) -> Self::Acc;
    fn add(&self, acc: &mut Self::Acc, item: T);
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
    fn extract(&self, acc: Self::Acc) -> Self::Out;
}

/// The number of elements.
#[derive(Clone, Copy, Debug, Default)]
pub struct Count;

impl<T> Combiner<T> for Count {
    type Acc = u64;
    type Out = u64;
    fn create(&self) -> u64 {
        0
    }
    fn add(&self, acc: &mut u64, _: T) {
        *acc += 1;
    }
    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
    fn extract(&self, acc: u64) -> u64 {
        acc
    }
}

macro_rules! of {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug)]
        pub struct $name<F>(F);

        impl<F> $name<F> {
            /// Over the value `f` reads from each element.
            pub fn of<T>(f: F) -> Self
            where
                F: Fn(&T) -> f64,
            {
                Self(f)
            }
        }
    };
}

of!(Sum, "The sum of a value read from each element.");
of!(Mean, "The mean of a value read from each element.");
of!(Min, "The smallest value read from the elements.");
of!(Max, "The largest value read from the elements.");

impl<T, F: Fn(&T) -> f64 + Send> Combiner<T> for Sum<F> {
    type Acc = f64;
    type Out = f64;
    fn create(&self) -> f64 {
        0.0
    }
    fn add(&self, acc: &mut f64, item: T) {
        *acc += (self.0)(&item);
    }
    fn merge(&self, acc: &mut f64, other: f64) {
        *acc += other;
    }
    fn extract(&self, acc: f64) -> f64 {
        acc
    }
}

impl<T, F: Fn(&T) -> f64 + Send> Combiner<T> for Mean<F> {
    /// Sum and count.
    type Acc = (f64, u64);
    type Out = f64;
    fn create(&self) -> (f64, u64) {
        (0.0, 0)
    }
    fn add(&self, acc: &mut (f64, u64), item: T) {
        acc.0 += (self.0)(&item);
        acc.1 += 1;
    }
    fn merge(&self, acc: &mut (f64, u64), other: (f64, u64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
    /// NaN for no elements (a window never fires empty).
    fn extract(&self, (sum, n): (f64, u64)) -> f64 {
        sum / n as f64
    }
}

macro_rules! extreme {
    ($name:ident, $pick:ident) => {
        impl<T, F: Fn(&T) -> f64 + Send> Combiner<T> for $name<F> {
            type Acc = Option<f64>;
            type Out = f64;
            fn create(&self) -> Option<f64> {
                None
            }
            fn add(&self, acc: &mut Option<f64>, item: T) {
                let x = (self.0)(&item);
                *acc = Some(acc.map_or(x, |a| a.$pick(x)));
            }
            fn merge(&self, acc: &mut Option<f64>, other: Option<f64>) {
                if let Some(x) = other {
                    *acc = Some(acc.map_or(x, |a| a.$pick(x)));
                }
            }
            /// NaN for no elements (a window never fires empty).
            fn extract(&self, acc: Option<f64>) -> f64 {
                acc.unwrap_or(f64::NAN)
            }
        }
    };
}
extreme!(Min, min);
extreme!(Max, max);

/// The `k` elements with the highest score, best first (ties: the earlier-added first).
#[derive(Clone, Copy, Debug)]
pub struct TopK<F> {
    k: usize,
    score: F,
}

impl<F> TopK<F> {
    pub fn of<T>(k: usize, score: F) -> Self
    where
        F: Fn(&T) -> f64,
    {
        Self { k, score }
    }
}

impl<T: Send, F: Fn(&T) -> f64 + Send> Combiner<T> for TopK<F> {
    type Acc = Vec<(f64, T)>;
    type Out = Vec<T>;
    fn create(&self) -> Self::Acc {
        Vec::new()
    }
    fn add(&self, acc: &mut Self::Acc, item: T) {
        let score = (self.score)(&item);
        // Stay sorted, best first; a NaN score ranks last.
        let at = acc.partition_point(|(s, _)| *s >= score || score.is_nan());
        if at < self.k {
            acc.insert(at, (score, item));
            acc.truncate(self.k);
        }
    }
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        for (_, item) in other {
            self.add(acc, item);
        }
    }
    fn extract(&self, acc: Self::Acc) -> Vec<T> {
        acc.into_iter().map(|(_, item)| item).collect()
    }
}

/// Click-through rate: impressions, clicks, their ratio and its Wilson score 95% interval.
#[derive(Clone, Copy, Debug)]
pub struct Ctr<F>(F);

impl<F> Ctr<F> {
    /// `clicked` says whether an impression was clicked.
    pub fn of<T>(clicked: F) -> Self
    where
        F: Fn(&T) -> bool,
    {
        Self(clicked)
    }
}

/// What [`Ctr`] reports for a window and key.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CtrStats {
    pub impressions: u64,
    pub clicks: u64,
    /// `clicks / impressions` (0 with no impressions).
    pub rate: f64,
    /// Wilson score interval at 95% for the rate.
    pub low: f64,
    pub high: f64,
}

impl CtrStats {
    pub fn new(impressions: u64, clicks: u64) -> Self {
        let (low, high) = wilson(clicks, impressions);
        Self {
            impressions,
            clicks,
            rate: if impressions == 0 {
                0.0
            } else {
                clicks as f64 / impressions as f64
            },
            low,
            high,
        }
    }
}

/// The Wilson score interval at 95% (z = 1.959964) for `successes` out of `n`.
pub fn wilson(successes: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (n, p) = (n as f64, successes as f64 / n as f64);
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

impl<T, F: Fn(&T) -> bool + Send> Combiner<T> for Ctr<F> {
    /// Impressions and clicks.
    type Acc = (u64, u64);
    type Out = CtrStats;
    fn create(&self) -> (u64, u64) {
        (0, 0)
    }
    fn add(&self, acc: &mut (u64, u64), item: T) {
        acc.0 += 1;
        acc.1 += u64::from((self.0)(&item));
    }
    fn merge(&self, acc: &mut (u64, u64), other: (u64, u64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
    fn extract(&self, (impressions, clicks): (u64, u64)) -> CtrStats {
        CtrStats::new(impressions, clicks)
    }
}
