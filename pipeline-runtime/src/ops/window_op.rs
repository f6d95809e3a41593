use std::time::{Duration, Instant};

use crate::context::RunContext;
use crate::panic::guard;
use crate::push::{Flow, Pos, Push, Signal, StageCell};
use crate::stage_fns::TimeFn;
use crate::window::{wall_clock, EventTime, WindowFn, Windowed};

/// `window(spec, time)`: each element goes on once per window of its event time that the
/// watermark has not closed; an element whose every window is closed goes to the dead letters.
///
/// The watermark is, as in Beam, the smallest of the watermarks of the stage's inputs: each
/// source upstream has its own (the largest event time seen from it, less the allowed lateness),
/// so behind a merge a stream that runs ahead does not close the windows of a slower one. A
/// source that has ended no longer holds it back, nor, with `idle_after(d)`, one that has sent
/// nothing for `d` until it sends again. With processing time (`ProcessingTime`) the watermark is
/// the wall clock, less the allowed lateness. It never goes back.
///
/// Idleness and the wall clock are looked at between batches and at every checkpoint barrier,
/// so that windows close while nothing arrives: when the watermark has moved on with no element
/// to carry it, a `Signal::Watermark` tells the `combine_per_key` after it.
pub struct WindowOp<W, F, I, N> {
    cell: StageCell,
    spec: W,
    time: F,
    /// Per source upstream (filled on first use): the largest event time seen from it, and
    /// whether it has ended or is idle (then it no longer holds the watermark back).
    sources: Vec<Upstream>,
    /// The watermark: windows ending at or before it are closed.
    watermark: i64,
    /// The watermark the stages after this one know of (carried by an element or a signal).
    told: i64,
    produced: u64,
    /// Elements in no window at all (a gap between sliding windows).
    unassigned: u64,
    next: N,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<W, F, I> WindowOp<W, F, I, ()> {
    #[doc(hidden)]
    pub fn new(id: u32, spec: W, time: F) -> Self {
        Self {
            cell: StageCell::new(id),
            spec,
            time,
            sources: Vec::new(),
            watermark: i64::MIN,
            told: i64::MIN,
            produced: 0,
            unassigned: 0,
            next: (),
            _input: std::marker::PhantomData,
        }
    }

    /// Links this stage to the rest of its segment.
    pub fn then<N>(self, next: N) -> WindowOp<W, F, I, N> {
        let Self {
            cell,
            spec,
            time,
            sources,
            watermark,
            told,
            produced,
            unassigned,
            _input,
            ..
        } = self;
        WindowOp {
            cell,
            spec,
            time,
            sources,
            watermark,
            told,
            produced,
            unassigned,
            next,
            _input,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Upstream {
    source: u32,
    max_seen: i64,
    /// End-of-source notices received, and how many it takes: one per path from the source to
    /// this stage (a fan-out or partition sends one down each branch).
    ended: u64,
    paths: u64,
    /// Whether an element from it arrived since the sources were last looked at.
    heard: bool,
    /// When it was last heard from, as of a look (or when this stage first saw any input).
    last_heard: Instant,
    /// Sent nothing for `idle_after`: does not hold the watermark back until it sends again.
    idle: bool,
}

impl Upstream {
    fn new(source: u32, paths: u64) -> Self {
        Self {
            source,
            max_seen: i64::MIN,
            ended: 0,
            paths: paths.max(1),
            heard: false,
            last_heard: Instant::now(),
            idle: false,
        }
    }

    fn running(&self) -> bool {
        self.ended < self.paths
    }

    /// Whether it holds the watermark back.
    fn holds(&self) -> bool {
        self.running() && !self.idle
    }
}

impl<W, F, I, N> WindowOp<W, F, I, N> {
    /// Fills the list of sources upstream, on first use.
    fn fill(&mut self, run: &RunContext) {
        if self.sources.is_empty() {
            let (graph, id) = (run.graph, self.cell.id);
            self.sources = graph
                .sources_upstream(id)
                .into_iter()
                .map(|s| Upstream::new(s, graph.paths(s, id)))
                .collect();
        }
    }

    /// The entry of `source`.
    fn upstream(&mut self, source: u32, run: &RunContext) -> &mut Upstream {
        self.fill(run);
        let at = match self.sources.iter().position(|u| u.source == source) {
            Some(at) => at,
            None => {
                let (graph, id) = (run.graph, self.cell.id);
                self.sources
                    .push(Upstream::new(source, graph.paths(source, id)));
                self.sources.len() - 1
            }
        };
        &mut self.sources[at]
    }

    /// The smallest of the largest times seen from the sources that hold the watermark back (a
    /// source not heard from yet counts as `i64::MIN`); once none does (all ended or idle), the
    /// largest time seen.
    fn slowest(&self) -> i64 {
        let holding = self.sources.iter().filter(|u| u.holds());
        match holding.map(|u| u.max_seen).min() {
            Some(t) => t,
            None => self
                .sources
                .iter()
                .map(|u| u.max_seen)
                .max()
                .unwrap_or(i64::MIN),
        }
    }

    /// Moves the watermark on to `to`, if that is further; returns it.
    fn raise(&mut self, to: i64) -> i64 {
        self.watermark = self.watermark.max(to);
        self.watermark
    }

    fn publish(&mut self, run: &RunContext) {
        self.cell.publish(run);
        if self.produced != 0 {
            run.stats.add_produced(self.cell.id, self.produced);
            self.produced = 0;
        }
        if self.unassigned != 0 {
            run.stats.add_filtered(self.cell.id, self.unassigned);
            self.unassigned = 0;
        }
    }
}

impl<T, W, F, N> WindowOp<W, F, T, N>
where
    W: WindowFn<T>,
    F: TimeFn<T>,
    N: Push<Windowed<T>>,
{
    /// What the watermark would be now, from the times seen (or the wall clock).
    fn level(&self) -> i64 {
        let lateness = self.spec.allowed_lateness();
        if <F::Time as EventTime>::WALL_CLOCK {
            wall_clock().saturating_sub(lateness)
        } else {
            self.slowest().saturating_sub(lateness)
        }
    }

    /// Between batches and at barriers: marks the sources that sent nothing for `idle_after`
    /// idle, follows the wall clock, and tells the stages after this one of a watermark that
    /// moved on with no element to carry it.
    fn look(&mut self, run: &RunContext) {
        let idle_after = self.spec.idle_after();
        if idle_after.is_some() || <F::Time as EventTime>::WALL_CLOCK {
            self.fill(run);
            let now = Instant::now();
            for source in &mut self.sources {
                if std::mem::take(&mut source.heard) {
                    source.last_heard = now;
                } else if idle_after.is_some_and(|d| now.duration_since(source.last_heard) >= d) {
                    source.idle = true;
                }
            }
            let level = self.level();
            self.raise(level);
        }
        if self.watermark > self.told {
            self.told = self.watermark;
            self.next.signal(Signal::Watermark(self.watermark), run);
        }
    }

    #[cold]
    fn too_late(&self, run: &RunContext, pos: Pos, time: i64, window: crate::window::Window) {
        let lateness = self.spec.allowed_lateness();
        let slowest = self.slowest();
        let error = if self.watermark > slowest.saturating_sub(lateness) {
            // The watermark moved on while a source was idle, and that source has sent again.
            let idle = self.spec.idle_after().unwrap_or(Duration::ZERO);
            format!(
                "too late: event time {time} ms is behind the watermark ({} ms), which moved on while a source upstream had sent nothing for over {idle:?} (`idle_after`); its window {window} was already closed",
                self.watermark
            )
        } else {
            format!(
                "too late: event time {time} ms is more than the allowed lateness ({lateness} ms) behind {slowest} ms, the largest time seen{}; its window {window} was already closed",
                if self.sources.len() > 1 { " from the slowest of its inputs" } else { "" }
            )
        };
        self.cell.dead(run, pos, error);
    }
}

impl<T, W, F, N> Push<T> for WindowOp<W, F, T, N>
where
    W: WindowFn<T>,
    F: TimeFn<T>,
    N: Push<Windowed<T>>,
{
    #[inline]
    fn push(&mut self, item: T, pos: Pos, run: &RunContext) {
        let time = match guard(|| (self.time)(&item).millis()) {
            Ok(time) => time,
            Err(panic) => return self.cell.dead(run, pos, panic),
        };
        let level = if <F::Time as EventTime>::WALL_CLOCK {
            time.saturating_sub(self.spec.allowed_lateness())
        } else {
            let upstream = self.upstream(pos.source, run);
            upstream.max_seen = upstream.max_seen.max(time);
            upstream.heard = true;
            // An idle source that sends again holds the watermark back again (from where it is:
            // it never goes back).
            upstream.idle = false;
            self.level()
        };
        let watermark = self.raise(level);
        let (mut sent, mut closed) = (0u64, None);
        let Self {
            spec,
            next,
            produced,
            ..
        } = self;
        spec.assign(time, item, |window, value| {
            if window.end <= watermark {
                closed.get_or_insert(window);
            } else {
                sent += 1;
                next.push(
                    Windowed {
                        window,
                        time,
                        value,
                        watermark,
                    },
                    pos,
                    run,
                );
            }
        });
        *produced += sent;
        if sent != 0 {
            self.told = watermark;
        } else {
            match closed {
                Some(window) => self.too_late(run, pos, time, window),
                None => self.unassigned += 1,
            }
        }
    }

    fn flush(&mut self, run: &RunContext, partial: bool) -> Flow {
        self.look(run);
        self.publish(run);
        self.next.flush(run, partial)
    }

    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        self.publish(run);
        self.next.finish(run)
    }

    fn signal(&mut self, signal: Signal, run: &RunContext) {
        match signal {
            Signal::Ended(ended) => {
                self.upstream(ended.source, run).ended += 1;
                let level = self.level();
                let watermark = self.raise(level);
                self.told = watermark;
                self.next.signal(
                    Signal::Ended(crate::push::Ended {
                        watermark: Some(watermark),
                        ..ended
                    }),
                    run,
                );
            }
            Signal::Barrier(_) => {
                // A barrier comes at least every checkpoint interval, even from a source that
                // sends nothing: the tick that closes windows while no element arrives.
                self.look(run);
                self.next.signal(signal, run);
            }
            // An earlier window's: this one has a watermark of its own.
            Signal::Watermark(_) => {}
        }
    }
}
