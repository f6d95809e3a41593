use crate::context::RunContext;
use crate::panic::guard;
use crate::push::{Flow, Pos, Push, StageCell};
use crate::stage_fns::TimeFn;
use crate::window::{EventTime, WindowFn, Windowed};

/// `window(spec, time)`: each element goes on once per window of its event time that the
/// watermark has not closed; an element whose every window is closed goes to the dead letters.
///
/// The watermark is, as in Beam, the smallest of the watermarks of the stage's inputs: each
/// source upstream has its own (the largest event time seen from it, less the allowed lateness),
/// so behind a merge a stream that runs ahead does not close the windows of a slower one.
pub struct WindowOp<W, F, I, N> {
    cell: StageCell,
    spec: W,
    time: F,
    /// Per source upstream (filled on first use): the largest event time seen from it, and
    /// whether it has ended (then it no longer holds the watermark back).
    sources: Vec<Upstream>,
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
}

impl Upstream {
    fn new(source: u32, paths: u64) -> Self {
        Self {
            source,
            max_seen: i64::MIN,
            ended: 0,
            paths: paths.max(1),
        }
    }

    fn running(&self) -> bool {
        self.ended < self.paths
    }
}

impl<W, F, I, N> WindowOp<W, F, I, N> {
    /// The entry of `source`, filling the list of sources upstream on first use.
    fn upstream(&mut self, source: u32, run: &RunContext) -> &mut Upstream {
        let (graph, id) = (run.graph, self.cell.id);
        if self.sources.is_empty() {
            self.sources = graph
                .sources_upstream(id)
                .into_iter()
                .map(|s| Upstream::new(s, graph.paths(s, id)))
                .collect();
        }
        let at = match self.sources.iter().position(|u| u.source == source) {
            Some(at) => at,
            None => {
                self.sources
                    .push(Upstream::new(source, graph.paths(source, id)));
                self.sources.len() - 1
            }
        };
        &mut self.sources[at]
    }

    /// The smallest of the largest times seen from the sources still running (a source not
    /// heard from yet counts as `i64::MIN`); once all have ended, the largest time seen.
    fn slowest(&self) -> i64 {
        let running = self.sources.iter().filter(|u| u.running());
        match running.map(|u| u.max_seen).min() {
            Some(t) => t,
            None => self
                .sources
                .iter()
                .map(|u| u.max_seen)
                .max()
                .unwrap_or(i64::MIN),
        }
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
        let upstream = self.upstream(pos.source, run);
        upstream.max_seen = upstream.max_seen.max(time);
        let lateness = self.spec.allowed_lateness();
        let slowest = self.slowest();
        let watermark = slowest.saturating_sub(lateness);
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
        if sent == 0 {
            match closed {
                Some(window) => self.cell.dead(
                    run,
                    pos,
                    format!(
                        "too late: event time {time} ms is more than the allowed lateness ({lateness} ms) behind {slowest} ms, the largest time seen{}; its window {window} was already closed",
                        if self.sources.len() > 1 { " from the slowest of its inputs" } else { "" }
                    ),
                ),
                None => self.unassigned += 1,
            }
        }
    }

    fn flush(&mut self, run: &RunContext, partial: bool) -> Flow {
        self.publish(run);
        self.next.flush(run, partial)
    }

    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        self.publish(run);
        self.next.finish(run)
    }

    fn signal(&mut self, signal: crate::push::Signal, run: &RunContext) {
        let crate::push::Signal::Ended(ended) = signal else {
            return self.next.signal(signal, run);
        };
        self.upstream(ended.source, run).ended += 1;
        let watermark = self.slowest().saturating_sub(self.spec.allowed_lateness());
        self.next.signal(
            crate::push::Signal::Ended(crate::push::Ended {
                watermark: Some(watermark),
                ..ended
            }),
            run,
        );
    }
}
