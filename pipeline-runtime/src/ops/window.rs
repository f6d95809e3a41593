use crate::check::TimeFn;
use crate::exec::Shared;
use crate::panic::guard;
use crate::push::{Flow, Pos, Push, StageCell};
use crate::window::{EventTime, WindowFn, Windowed};

/// `window(spec, time)`: each element goes on once per window of its event time that the
/// watermark has not closed; an element whose every window is closed goes to the dead letters.
pub struct WindowOp<W, F, I, N> {
    cell: StageCell,
    spec: W,
    time: F,
    /// The largest event time seen so far.
    max_seen: i64,
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
            max_seen: i64::MIN,
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
        self.max_seen = self.max_seen.max(time);
        let lateness = self.spec.allowed_lateness();
        let watermark = self.max_seen.saturating_sub(lateness);
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
                        "too late: event time {time} ms is more than the allowed lateness ({lateness} ms) behind the largest time seen ({} ms); its window {window} was already closed",
                        self.max_seen
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
