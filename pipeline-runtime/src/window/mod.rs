//! Event-time windows: the time of an element is read by a user function, each element is
//! assigned to one window (`Fixed`) or several (`Sliding`), and a watermark trailing the largest
//! time seen by an allowed lateness decides when a window is complete. `combine_per_key` then
//! folds each window's elements per key with a [`Combiner`].
//!
//! Times are milliseconds on any epoch the user picks (`i64`/`u64` read as milliseconds, or a
//! `Duration` since the epoch, or a `SystemTime`).
//!
//! Two additions for live streams: `idle_after(d)` on a window spec lets a source upstream that
//! has sent nothing for `d` (wall clock) stop holding the watermark back until it sends again;
//! and [`processing_time`] as the time function windows elements by when they reach the
//! `window` stage (the wall clock), for streams with no usable event time. Both are looked at
//! again at every checkpoint barrier and between batches, so a window closes as wall time passes
//! even when nothing arrives. Processing-time results depend on when elements arrive: a replay
//! after a crash puts them in other windows.

mod combine;

pub use combine::{wilson, Combiner, Count, Ctr, CtrStats, Max, Mean, Min, Sum, TopK};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// An event time: what `window`'s time function returns.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event time",
    label = "the time function of `window` must return a time",
    note = "return milliseconds as `i64`/`u64`, a `std::time::Duration` since your epoch, or a `std::time::SystemTime`"
)]
pub trait EventTime {
    /// Milliseconds since the epoch.
    fn millis(self) -> i64;

    /// Whether this time is the wall clock read as the element reaches `window`
    /// ([`ProcessingTime`]): then the watermark follows the wall clock, not the times seen.
    #[doc(hidden)]
    const WALL_CLOCK: bool = false;
}

/// Processing time: the wall clock (milliseconds since the Unix epoch) when an element reaches
/// the `window` stage. Returned by [`processing_time`], the time function for streams without a
/// usable event time: `window(Fixed::seconds(10), processing_time)`.
///
/// Its windows close as the wall clock passes their end (plus the allowed lateness): at the next
/// checkpoint barrier or batch, or at the end of the input. No element is ever late. The results
/// depend on when elements arrive, so they are not reproducible: after a crash, the input read
/// again is windowed by the time of the replay, not of the first reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProcessingTime(i64);

impl ProcessingTime {
    /// The wall clock now.
    pub fn now() -> Self {
        Self(wall_clock())
    }
}

impl EventTime for ProcessingTime {
    fn millis(self) -> i64 {
        self.0
    }
    const WALL_CLOCK: bool = true;
}

/// The time function of processing-time windows: ignores the element and reads the wall clock
/// (see [`ProcessingTime`]).
pub fn processing_time<T>(_: &T) -> ProcessingTime {
    ProcessingTime::now()
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn wall_clock() -> i64 {
    SystemTime::now().millis()
}

impl EventTime for i64 {
    fn millis(self) -> i64 {
        self
    }
}
impl EventTime for u64 {
    fn millis(self) -> i64 {
        i64::try_from(self).unwrap_or(i64::MAX)
    }
}
impl EventTime for i32 {
    fn millis(self) -> i64 {
        self.into()
    }
}
impl EventTime for u32 {
    fn millis(self) -> i64 {
        self.into()
    }
}
impl EventTime for Duration {
    fn millis(self) -> i64 {
        i64::try_from(self.as_millis()).unwrap_or(i64::MAX)
    }
}
impl EventTime for SystemTime {
    fn millis(self) -> i64 {
        match self.duration_since(UNIX_EPOCH) {
            Ok(after) => after.millis(),
            Err(before) => -before.duration().millis(),
        }
    }
}

fn ms(d: Duration) -> i64 {
    d.millis()
}

/// A half-open window of event time, `[start, end)` in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    pub fn contains(&self, time: i64) -> bool {
        self.start <= time && time < self.end
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}) ms", self.start, self.end)
    }
}

/// An element in one of its windows, as `window` emits it.
#[derive(Clone, Debug, PartialEq)]
pub struct Windowed<T> {
    pub window: Window,
    /// The element's event time (milliseconds).
    pub time: i64,
    pub value: T,
    /// The watermark when the element was assigned: windows ending at or before it are complete.
    pub(crate) watermark: i64,
}

impl<T> Windowed<T> {
    /// The watermark when the element was assigned.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }
}

/// How `window` assigns elements to windows. Implemented by [`Fixed`] and [`Sliding`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot assign elements of type `{T}` to windows",
    label = "expected `Fixed::minutes(..)`, `Sliding::new(size, period)`, ...",
    note = "`Sliding` puts an element in several windows, so its elements must be `Clone`"
)]
pub trait WindowFn<T>: Send {
    /// How far behind the largest time seen an element may be and still be counted.
    fn allowed_lateness(&self) -> i64;

    /// How long a source upstream may send nothing before it stops holding the watermark back
    /// (until it sends again); `None`: it holds it back until it ends.
    fn idle_after(&self) -> Option<Duration> {
        None
    }

    /// Calls `emit` once per window containing `time`, in order of start.
    fn assign(&self, time: i64, item: T, emit: impl FnMut(Window, T));
}

/// Back-to-back windows of one size: each element is in exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fixed {
    size: i64,
    lateness: i64,
    idle: Option<Duration>,
}

impl Fixed {
    /// Windows of `size` (at least a millisecond), aligned on the epoch; no allowed lateness.
    pub fn new(size: Duration) -> Self {
        Self {
            size: ms(size).max(1),
            lateness: 0,
            idle: None,
        }
    }
    pub fn millis(n: u64) -> Self {
        Self::new(Duration::from_millis(n))
    }
    pub fn seconds(n: u64) -> Self {
        Self::new(Duration::from_secs(n))
    }
    pub fn minutes(n: u64) -> Self {
        Self::new(Duration::from_secs(60 * n))
    }
    pub fn hours(n: u64) -> Self {
        Self::new(Duration::from_secs(3600 * n))
    }
    /// Elements up to `lateness` behind the largest time seen still count in their window.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = ms(lateness);
        self
    }

    /// A source upstream from which nothing arrived for `idle` (wall clock) stops holding the
    /// watermark back until it sends again, as if it had ended; what it sends then behind the
    /// watermark is late (dead letters, as usual). Without it, a quiet source holds every
    /// window open until it sends or ends.
    pub fn idle_after(mut self, idle: Duration) -> Self {
        self.idle = Some(idle);
        self
    }

    /// The window containing `time`.
    pub fn window_of(&self, time: i64) -> Window {
        let start = time.div_euclid(self.size) * self.size;
        Window {
            start,
            end: start.saturating_add(self.size),
        }
    }
}

impl<T> WindowFn<T> for Fixed {
    fn allowed_lateness(&self) -> i64 {
        self.lateness
    }

    fn idle_after(&self) -> Option<Duration> {
        self.idle
    }

    #[inline]
    fn assign(&self, time: i64, item: T, mut emit: impl FnMut(Window, T)) {
        emit(self.window_of(time), item)
    }
}

/// Overlapping windows of `size`, one starting every `period`: an element is in about
/// `size / period` of them (copied into each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sliding {
    size: i64,
    period: i64,
    lateness: i64,
    idle: Option<Duration>,
}

impl Sliding {
    /// Windows of `size` starting every `period` (both at least a millisecond), aligned on the
    /// epoch; no allowed lateness.
    pub fn new(size: Duration, period: Duration) -> Self {
        Self {
            size: ms(size).max(1),
            period: ms(period).max(1),
            lateness: 0,
            idle: None,
        }
    }
    /// Elements up to `lateness` behind the largest time seen still count in their windows.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = ms(lateness);
        self
    }

    /// A source upstream from which nothing arrived for `idle` (wall clock) stops holding the
    /// watermark back until it sends again, as if it had ended; what it sends then behind the
    /// watermark is late (dead letters, as usual). Without it, a quiet source holds every
    /// window open until it sends or ends.
    pub fn idle_after(mut self, idle: Duration) -> Self {
        self.idle = Some(idle);
        self
    }

    /// The windows containing `time`, by start.
    pub fn windows_of(&self, time: i64) -> impl Iterator<Item = Window> + '_ {
        let last = time.div_euclid(self.period) * self.period;
        // The earliest start whose window still contains `time`: start > time - size.
        let first = (time - self.size).div_euclid(self.period) * self.period + self.period;
        (0..)
            .map(move |n| first + n * self.period)
            .take_while(move |&start| start <= last)
            .map(move |start| Window {
                start,
                end: start.saturating_add(self.size),
            })
    }
}

impl<T: Clone> WindowFn<T> for Sliding {
    fn allowed_lateness(&self) -> i64 {
        self.lateness
    }

    fn idle_after(&self) -> Option<Duration> {
        self.idle
    }

    fn assign(&self, time: i64, item: T, mut emit: impl FnMut(Window, T)) {
        let mut windows = self.windows_of(time).peekable();
        while let Some(window) = windows.next() {
            if windows.peek().is_none() {
                return emit(window, item);
            }
            emit(window, item.clone());
        }
    }
}

/// One key's combined value in one window, as `combine_per_key` emits it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Combined<K, V> {
    pub window: Window,
    pub key: K,
    pub value: V,
}
