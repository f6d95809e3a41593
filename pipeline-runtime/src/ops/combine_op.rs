use std::collections::BTreeMap;

use crate::context::RunContext;
use crate::panic::guard;
use crate::push::{Flow, Pos, Push, Signal, StageCell};
use crate::stage_fns::KeyFn;
use crate::window::{Combined, Combiner, Window, Windowed};

/// One window's accumulators, by key, each with the position of the last element added (where a
/// failure downstream of the result points).
type Panes<K, A> = BTreeMap<K, (A, Pos)>;

/// `combine_per_key(key, combiner)` on a windowed stream: folds each window's elements per key
/// and emits one [`Combined`] per window and key once the watermark passes the window's end
/// (windows in order of end, keys in order), and every window still open at the end of input.
pub struct CombineOp<F, C, I, K, A, N> {
    cell: StageCell,
    key: F,
    combiner: C,
    /// Open windows by (end, start), so the ones to emit come first.
    open: BTreeMap<(i64, i64), Panes<K, A>>,
    /// Windows ending at or before this have been emitted.
    watermark: i64,
    produced: u64,
    /// Checkpoint barriers held back, each with the end of the last window open when it
    /// arrived: it goes on once no window ending at or before that is open. So no input of a
    /// window still open is acknowledged, and a restart rebuilds the window by reading it again.
    held: std::collections::VecDeque<(u64, i64)>,
    next: N,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<F, C, I, K, A> CombineOp<F, C, I, K, A, ()> {
    #[doc(hidden)]
    pub fn new(id: u32, key: F, combiner: C) -> Self {
        Self {
            cell: StageCell::new(id),
            key,
            combiner,
            open: BTreeMap::new(),
            watermark: i64::MIN,
            produced: 0,
            held: Default::default(),
            next: (),
            _input: std::marker::PhantomData,
        }
    }

    /// Links this stage to the rest of its segment.
    pub fn then<N>(self, next: N) -> CombineOp<F, C, I, K, A, N> {
        CombineOp {
            cell: self.cell,
            key: self.key,
            combiner: self.combiner,
            open: self.open,
            watermark: self.watermark,
            produced: self.produced,
            held: self.held,
            next,
            _input: self._input,
        }
    }
}

impl<T, F, C, N> CombineOp<F, C, T, F::Key, C::Acc, N>
where
    F: KeyFn<T>,
    F::Key: Ord,
    C: Combiner<T>,
    N: Push<Combined<F::Key, C::Out>>,
{
    fn publish(&mut self, run: &RunContext) {
        self.cell.publish(run);
        if self.produced != 0 {
            run.stats.add_produced(self.cell.id, self.produced);
            self.produced = 0;
        }
    }

    /// Passes on the held barriers whose windows have all been emitted.
    fn release(&mut self, run: &RunContext) {
        while let Some(&(epoch, horizon)) = self.held.front() {
            if self
                .open
                .first_key_value()
                .is_some_and(|(&(end, _), _)| end <= horizon)
            {
                break;
            }
            self.held.pop_front();
            self.next
                .signal(Signal::Barrier(crate::push::Barrier { epoch }), run);
        }
    }

    /// The watermark reached `watermark`: emits the windows it closes and passes on the
    /// barriers that waited for them.
    fn advance(&mut self, watermark: i64, run: &RunContext) {
        if watermark > self.watermark {
            self.watermark = watermark;
            self.emit_until(watermark, run);
            self.release(run);
        }
    }

    /// Emits every open window ending at or before `upto`.
    fn emit_until(&mut self, upto: i64, run: &RunContext) {
        while let Some(entry) = self.open.first_entry() {
            if entry.key().0 > upto {
                break;
            }
            let ((end, start), panes) = entry.remove_entry();
            let window = Window { start, end };
            for (key, (acc, pos)) in panes {
                let combiner = &self.combiner;
                match guard(|| combiner.extract(acc)) {
                    Ok(value) => {
                        self.produced += 1;
                        self.next.push(Combined { window, key, value }, pos, run);
                    }
                    Err(panic) => self.cell.dead(run, pos, panic),
                }
            }
        }
    }
}

impl<T, F, C, N> Push<Windowed<T>> for CombineOp<F, C, T, F::Key, C::Acc, N>
where
    F: KeyFn<T>,
    F::Key: Ord,
    C: Combiner<T>,
    N: Push<Combined<F::Key, C::Out>>,
{
    fn push(&mut self, item: Windowed<T>, pos: Pos, run: &RunContext) {
        let Windowed {
            window,
            value,
            watermark,
            ..
        } = item;
        if window.end <= self.watermark {
            // Only when streams with different watermarks were merged after `window`.
            return self.cell.dead(
                run,
                pos,
                format!(
                    "too late: its window {window} was already emitted (the watermark had reached {} ms)",
                    self.watermark
                ),
            );
        }
        let Self {
            key,
            combiner,
            open,
            ..
        } = self;
        let added = guard(|| {
            let k = key(&value);
            let panes = open.entry((window.end, window.start)).or_default();
            match panes.get_mut(&k) {
                Some((acc, last)) => {
                    combiner.add(acc, value);
                    *last = pos;
                }
                None => {
                    let mut acc = combiner.create();
                    combiner.add(&mut acc, value);
                    panes.insert(k, (acc, pos));
                }
            }
        });
        if let Err(panic) = added {
            self.cell.dead(run, pos, panic);
        }
        self.advance(watermark, run);
    }

    fn flush(&mut self, run: &RunContext, partial: bool) -> Flow {
        self.publish(run);
        self.next.flush(run, partial)
    }

    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        self.emit_until(i64::MAX, run);
        self.release(run);
        self.publish(run);
        self.next.finish(run)
    }

    fn signal(&mut self, signal: Signal, run: &RunContext) {
        let ended = match signal {
            Signal::Ended(ended) => ended,
            Signal::Barrier(barrier) => {
                let horizon = self
                    .open
                    .last_key_value()
                    .map_or(i64::MIN, |(&(end, _), _)| end);
                self.held.push_back((barrier.epoch, horizon));
                return self.release(run);
            }
            // The window's own: a window after this one has a watermark of its own.
            Signal::Watermark(watermark) => return self.advance(watermark, run),
        };
        if let Some(watermark) = ended.watermark {
            self.advance(watermark, run);
        }
        // A window after this one has a watermark of its own.
        self.next.signal(
            Signal::Ended(crate::push::Ended {
                watermark: None,
                ..ended
            }),
            run,
        );
    }
}
