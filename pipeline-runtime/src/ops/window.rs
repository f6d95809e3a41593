use crate::check::TimeFn;
use crate::exec::Shared;
use crate::panic::guard;
use crate::push::{Flow, Pos, Push, StageCell};
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
    /// The largest event time seen from each source upstream (filled on the first element).
    max_seen: Vec<(u32, i64)>,
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
            max_seen: Vec::new(),
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
            max_seen,
            produced,
            unassigned,
            _input,
            ..
        } = self;
        WindowOp {
            cell,
            spec,
            time,
            max_seen,
            produced,
            unassigned,
            next,
            _input,
        }
    }
}

impl<W, F, I, N> WindowOp<W, F, I, N> {
    fn publish(&mut self, cx: &Shared) {
        self.cell.publish(cx);
        if self.produced != 0 {
            cx.stats.add_produced(self.cell.id, self.produced);
            self.produced = 0;
        }
        if self.unassigned != 0 {
            cx.stats.add_filtered(self.cell.id, self.unassigned);
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
    fn push(&mut self, item: T, pos: Pos, cx: &Shared) {
        let time = match guard(|| (self.time)(&item).millis()) {
            Ok(time) => time,
            Err(panic) => return self.cell.dead(cx, pos, panic),
        };
        if self.max_seen.is_empty() {
            let upstream = cx.graph.sources_upstream(self.cell.id);
            self.max_seen = upstream.into_iter().map(|s| (s, i64::MIN)).collect();
        }
        match self.max_seen.iter_mut().find(|(s, _)| *s == pos.source) {
            Some((_, max)) => *max = (*max).max(time),
            None => self.max_seen.push((pos.source, time)),
        }
        let lateness = self.spec.allowed_lateness();
        // A source not heard from yet holds the watermark back (`i64::MIN`).
        let slowest = self.max_seen.iter().map(|&(_, t)| t).min().unwrap_or(time);
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
                    cx,
                );
            }
        });
        *produced += sent;
        if sent == 0 {
            match closed {
                Some(window) => self.cell.dead(
                    cx,
                    pos,
                    format!(
                        "too late: event time {time} ms is more than the allowed lateness ({lateness} ms) behind {slowest} ms, the largest time seen{}; its window {window} was already closed",
                        if self.max_seen.len() > 1 { " from the slowest of its inputs" } else { "" }
                    ),
                ),
                None => self.unassigned += 1,
            }
        }
    }

    fn flush(&mut self, cx: &Shared, partial: bool) -> Flow {
        self.publish(cx);
        self.next.flush(cx, partial)
    }

    fn finish(&mut self, cx: &Shared) -> crate::Result<()> {
        self.publish(cx);
        self.next.finish(cx)
    }
}
