use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::context::RunContext;
use crate::error::Error;
use crate::exchange::{self, Endpoint, Incoming, Outgoing, Packer};
use crate::panic::guard;
use crate::push::{Flow, Pos, Push, Signal, StageCell};
use crate::stage_fns::KeyFn;
use crate::window::{Combined, Combiner, Window, Windowed};

/// One window's accumulators, by key, each with the position of the last element added (where a
/// failure downstream of the result points).
type Panes<K, A> = std::collections::HashMap<K, (A, Pos)>;

/// `combine_per_key(key, combiner)` on a windowed stream: folds each window's elements per key
/// and emits one [`Combined`] per window and key once the watermark passes the window's end
/// (windows in order of end, keys in order), and every window still open at the end of input.
///
/// In a run split across workers (see `exchange`), a window closed here is shipped, key by key,
/// to the worker owning the key, and a worker emits the windows of the keys it owns once the
/// job's watermark has passed them.
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
    /// End-of-source notices still to come before the input has ended: one per path from each
    /// source upstream (filled on first use). In a split run, the end of input ships every
    /// window left at once, so the other workers need not wait for this one's `finish`.
    to_end: Option<u64>,
    /// Whether the exchange has been looked for (on first use), and its state in a split run.
    linked: bool,
    split: Option<Split<K, A>>,
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
            to_end: None,
            linked: false,
            split: None,
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
            to_end: self.to_end,
            linked: self.linked,
            split: self.split,
            next,
            _input: self._input,
        }
    }
}

/// In a split run, how many windows a worker may ship beyond the job's watermark (that is, ahead
/// of the slowest worker) before its `combine_per_key` waits for the others: what bounds the
/// windows waiting at their owners, and slows this worker's readers to the slowest worker's pace
/// (timely has no backpressure of its own).
pub const MAX_WINDOWS_AHEAD: usize = 64;

/// One window's arrived accumulators, as they came: each with its key, its sending worker and the
/// position of the last element folded into it (sorted by key and worker when the window is
/// emitted: cheaper than a map of keys to lists).
type Arrived<K, A> = Vec<(K, usize, A, Pos)>;

/// A `combine_per_key`'s part of the exchange by key in a split run.
struct Split<K, A> {
    end: Endpoint,
    /// Entries waiting to be shipped (sent with the next watermark, or at the next flush).
    packer: Packer,
    /// Whether each worker folds its elements before shipping (see `exchange::preaggregate`).
    preaggregate: bool,
    /// The watermark last sent: a watermark that moved with nothing to ship goes at the next
    /// flush (between chunks), not with every element.
    told: i64,
    /// The ends of the windows shipped that the job's watermark has not passed yet.
    ahead: std::collections::VecDeque<i64>,
    /// The end of the last window shipped (for job-wide checkpoints: what the job must have
    /// made durable before this worker's input so far is acknowledged).
    shipped: i64,
    /// Accumulators of the keys this worker owns, by window and key: one per sending worker.
    arrived: BTreeMap<(i64, i64), Arrived<K, A>>,
    /// The job's watermark: every worker has shipped the windows ending at or before it.
    job: i64,
    /// This worker has shipped everything and told the others it is done.
    done: bool,
    /// Every worker is done.
    closed: bool,
    /// The exchange failed (another worker's share, or this process's connections).
    failed: Option<String>,
}

impl<K: Ord + DeserializeOwned, A: DeserializeOwned> Split<K, A> {
    fn take(&mut self, message: Incoming) -> Result<(), String> {
        match message {
            Incoming::Parcel(parcel) => {
                let (sender, entries) = exchange::unpack::<K, A>(&parcel)?;
                for e in entries {
                    self.arrived
                        .entry((e.window.end, e.window.start))
                        .or_default()
                        .push((e.key, sender, e.acc, e.pos));
                }
            }
            Incoming::Watermark(w) => self.job = self.job.max(w),
            Incoming::Closed => {
                self.job = i64::MAX;
                self.closed = true;
            }
            Incoming::Failed(why) => self.failed = Some(why),
        }
        Ok(())
    }

    /// Takes the next message from the exchange, waiting at most `wait` (`None`: until one
    /// comes); returns whether one came. A closed exchange marks the stage failed.
    fn next(&mut self, wait: Option<std::time::Duration>) -> Result<bool, String> {
        let got = match wait {
            // Not `recv_timeout(ZERO)`: crossbeam spins and yields the thread several times
            // before it looks at the deadline, and this is asked whenever the watermark moves
            // (it made split `ab_test` runs 2x slower).
            Some(std::time::Duration::ZERO) => self
                .end
                .incoming
                .try_recv()
                .map_err(|e| e.is_disconnected()),
            Some(wait) => self
                .end
                .incoming
                .recv_timeout(wait)
                .map_err(|e| e.is_disconnected()),
            None => self.end.incoming.recv().map_err(|_| true),
        };
        match got {
            Ok(message) => self.take(message).map(|()| true),
            Err(disconnected) => {
                if disconnected {
                    self.stopped();
                }
                Ok(false)
            }
        }
    }

    /// The exchange's channels are closed (its coordinator stopped).
    fn stopped(&mut self) {
        self.failed
            .get_or_insert_with(|| "the exchange between workers stopped".into());
    }
}

impl<T, F, C, N> CombineOp<F, C, T, F::Key, C::Acc, N>
where
    F: KeyFn<T>,
    F::Key: Ord + std::hash::Hash + Serialize + DeserializeOwned,
    C: Combiner<T>,
    C::Acc: Serialize + DeserializeOwned,
    N: Push<Combined<F::Key, C::Out>>,
{
    fn publish(&mut self, run: &RunContext) {
        self.cell.publish(run);
        if self.produced != 0 {
            run.stats.add_produced(self.cell.id, self.produced);
            self.produced = 0;
        }
    }

    /// On first use: this stage's end of the exchange, in a split run.
    #[inline]
    fn link(&mut self, run: &RunContext) {
        if !self.linked {
            self.linked = true;
            self.split = run.exchange.as_ref().and_then(|ex| {
                ex.take(self.cell.id).map(|end| Split {
                    end,
                    packer: Packer::new(ex.workers, ex.me),
                    preaggregate: exchange::preaggregate(),
                    told: i64::MIN,
                    ahead: Default::default(),
                    shipped: i64::MIN,
                    arrived: BTreeMap::new(),
                    job: i64::MIN,
                    done: false,
                    closed: false,
                    failed: None,
                })
            });
        }
    }

    /// Passes on the held barriers whose windows have all been emitted (in a split run: by
    /// every worker, as far as the job's watermark says).
    fn release(&mut self, run: &RunContext) {
        let job = self.split.as_ref().map_or(i64::MAX, |s| s.job);
        while let Some(&(epoch, horizon)) = self.held.front() {
            if job < horizon
                || self
                    .open
                    .first_key_value()
                    .is_some_and(|(&(end, _), _)| end <= horizon)
            {
                break;
            }
            self.held.pop_front();
            if self.split.is_some() {
                run.checkpoints.released(epoch, job);
            }
            self.next
                .signal(Signal::Barrier(crate::push::Barrier { epoch }), run);
        }
    }

    /// The watermark reached `watermark`: emits (or, split, ships) the windows it closes and
    /// passes on the barriers that waited for them.
    fn advance(&mut self, watermark: i64, run: &RunContext) {
        if watermark > self.watermark {
            self.watermark = watermark;
            if self.split.is_some() {
                // What has arrived is taken when a window closes here, and between chunks
                // (`flush`): not with every element that moves the watermark.
                if self.ship(watermark, run) {
                    self.receive(run);
                }
            } else {
                self.emit_until(watermark, run);
            }
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
            // Keys in order: a window's results come out sorted by key.
            let mut panes: Vec<_> = panes.into_iter().collect();
            panes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (key, (acc, pos)) in panes {
                self.extract(window, key, acc, pos, run);
            }
        }
    }

    fn extract(&mut self, window: Window, key: F::Key, acc: C::Acc, pos: Pos, run: &RunContext) {
        let combiner = &self.combiner;
        match guard(|| combiner.extract(acc)) {
            Ok(value) => {
                self.produced += 1;
                self.next.push(Combined { window, key, value }, pos, run);
            }
            Err(panic) => self.cell.dead(run, pos, panic),
        }
    }

    /// Split: packs every open window ending at or before `upto` for the workers owning its
    /// keys, and sends what is packed, if anything, with this worker's watermark. Whether a
    /// window closed.
    fn ship(&mut self, upto: i64, run: &RunContext) -> bool {
        let Some(split) = self.split.as_mut() else {
            return false;
        };
        let mut closed = false;
        let packed = split.packer.records;
        while let Some(entry) = self.open.first_entry() {
            if entry.key().0 > upto {
                break;
            }
            let ((end, start), panes) = entry.remove_entry();
            let window = Window { start, end };
            closed = true;
            if split.ahead.back().is_none_or(|&last| last < end) {
                split.ahead.push_back(end);
            }
            split.shipped = split.shipped.max(end);
            for (key, (acc, pos)) in panes {
                // Told whole: the owner cannot count the lines before this worker's part.
                let pos = run.position(pos);
                if let Err(error) = split.packer.add(window, &key, &acc, pos) {
                    run.fail(Error::Internal(format!(
                        "`combine_per_key` could not ship an accumulator to another worker: {error}"
                    )));
                    return closed;
                }
            }
        }
        // Without pre-aggregation, the elements packed as they came go at the next flush.
        if split.packer.records != packed {
            self.send(run);
        }
        closed
    }

    /// Split: sends what is packed, with this worker's watermark.
    fn send(&mut self, run: &RunContext) {
        let Some(split) = self.split.as_mut() else {
            return;
        };
        let records = std::mem::take(&mut split.packer.records);
        let (parcels, bytes) = split.packer.parcels();
        if let Some(ex) = &run.exchange {
            ex.records
                .fetch_add(records, std::sync::atomic::Ordering::Relaxed);
            ex.bytes
                .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        }
        let watermark = self.watermark;
        split.told = watermark;
        if !split.end.ship(Outgoing::Ship { parcels, watermark }) {
            split.stopped();
        }
    }

    /// Split: takes what has arrived from the exchange without waiting, and emits the windows
    /// the job's watermark has closed.
    fn receive(&mut self, run: &RunContext) {
        let Some(split) = self.split.as_mut() else {
            return;
        };
        loop {
            match split.next(Some(std::time::Duration::ZERO)) {
                Ok(true) => {}
                Ok(false) => break,
                Err(error) => return run.fail(Error::Internal(error)),
            }
        }
        let upto = split.job;
        self.emit_arrived(upto, run);
    }

    /// Split: whether this worker must wait for the others before it reads on: it has shipped
    /// more than [`MAX_WINDOWS_AHEAD`] windows that the job's watermark has not passed (another
    /// worker is slower), or it has ended and waits for their last windows. Its segment then
    /// says so (`Flow::Wait`), which holds its readers. The slowest worker never waits for being
    /// ahead (it has shipped nothing beyond the job's watermark), so neither does the job.
    fn waits(&mut self, run: &RunContext) -> bool {
        let Some(split) = self.split.as_mut() else {
            return false;
        };
        while split.ahead.front().is_some_and(|&end| end <= split.job) {
            split.ahead.pop_front();
        }
        let waiting = split.done || split.ahead.len() > MAX_WINDOWS_AHEAD;
        waiting && !split.closed && split.failed.is_none() && !run.aborted()
    }

    /// Split, at the end of this worker's input: ships every window left and tells the others
    /// this worker is done.
    fn ship_last(&mut self, run: &RunContext) {
        if self.split.as_ref().is_none_or(|s| s.done) {
            return;
        }
        self.watermark = i64::MAX;
        self.ship(i64::MAX, run);
        // What is still packed (without pre-aggregation, the elements since the last flush).
        self.send(run);
        if let Some(split) = self.split.as_mut() {
            split.done = true;
            if !split.end.ship(Outgoing::Done) {
                split.stopped();
            }
        }
    }

    /// Split: merges (in the order of the sending workers) and emits the arrived windows ending
    /// at or before `upto`.
    fn emit_arrived(&mut self, upto: i64, run: &RunContext) {
        loop {
            let Some(split) = self.split.as_mut() else {
                return;
            };
            let Some(entry) = split.arrived.first_entry() else {
                return;
            };
            if entry.key().0 > upto {
                return;
            }
            let ((end, start), mut parts) = entry.remove_entry();
            let window = Window { start, end };
            parts.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut parts = parts.into_iter().peekable();
            while let Some((key, _, mut acc, mut pos)) = parts.next() {
                let combiner = &self.combiner;
                let merged = guard(|| {
                    while let Some((_, _, other, at)) = parts.next_if(|p| p.0 == key) {
                        combiner.merge(&mut acc, other);
                        pos = at;
                    }
                    acc
                });
                match merged {
                    Ok(acc) => self.extract(window, key, acc, pos, run),
                    Err(panic) => {
                        // The key's other parts go with it.
                        while parts.next_if(|p| p.0 == key).is_some() {}
                        self.cell.dead(run, pos, panic)
                    }
                }
            }
        }
    }

    /// Split, at the end of input: ships every window left (if the end of input has not
    /// already), and emits the windows of the keys it owns, every worker being done. Its segment
    /// finishes once `flush` no longer waits, so every worker's last windows have arrived.
    fn finish_split(&mut self, run: &RunContext) -> crate::Result<()> {
        self.ship_last(run);
        let Some(split) = self.split.as_mut() else {
            return Ok(());
        };
        while !split.closed && split.failed.is_none() {
            // Nothing waits here: what has arrived is taken, and the rest is missing.
            if !split
                .next(Some(std::time::Duration::ZERO))
                .map_err(Error::Internal)?
            {
                break;
            }
        }
        if !split.closed && split.failed.is_none() {
            split.failed = Some(if run.aborted() {
                "the run stopped".into()
            } else {
                "its segment finished before the other workers were done".into()
            });
        }
        if let Some(why) = split.failed.take() {
            return Err(Error::Peer(format!(
                "`combine_per_key` (stage {}) could not complete its windows: {why}",
                self.cell.id
            )));
        }
        self.emit_arrived(i64::MAX, run);
        Ok(())
    }

    /// An end-of-source notice arrived: once every source upstream has ended (down every path),
    /// a split run ships what is left at once.
    fn source_ended(&mut self, run: &RunContext) {
        let left = self.to_end.get_or_insert_with(|| {
            let (graph, id) = (run.graph, self.cell.id);
            graph
                .sources_upstream(id)
                .into_iter()
                .map(|s| graph.paths(s, id).max(1))
                .sum()
        });
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.ship_last(run);
            self.receive(run);
        }
    }
}

impl<T, F, C, N> Push<Windowed<T>> for CombineOp<F, C, T, F::Key, C::Acc, N>
where
    F: KeyFn<T>,
    F::Key: Ord + std::hash::Hash + Serialize + DeserializeOwned,
    C: Combiner<T>,
    C::Acc: Serialize + DeserializeOwned,
    N: Push<Combined<F::Key, C::Out>>,
{
    fn push(&mut self, item: Windowed<T>, pos: Pos, run: &RunContext) {
        self.link(run);
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
        if let Some(split) = self.split.as_mut().filter(|s| !s.preaggregate) {
            // Measuring what pre-aggregation saves: every element shipped on its own.
            let combiner = &self.combiner;
            let k = match guard(|| (self.key)(&value)) {
                Ok(k) => k,
                Err(panic) => return self.cell.dead(run, pos, panic),
            };
            match guard(|| {
                let mut acc = combiner.create();
                combiner.add(&mut acc, value);
                acc
            }) {
                Ok(acc) => {
                    split.shipped = split.shipped.max(window.end);
                    if let Err(error) = split.packer.add(window, &k, &acc, run.position(pos)) {
                        run.fail(Error::Internal(error));
                    }
                }
                Err(panic) => self.cell.dead(run, pos, panic),
            }
            return self.advance(watermark, run);
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
        self.link(run);
        let mut flow = Flow::Continue;
        if let Some(split) = &self.split {
            if !split.done && (split.packer.records != 0 || split.told < self.watermark) {
                self.send(run);
            }
            self.receive(run);
            self.release(run);
            if self.waits(run) {
                flow = Flow::Wait;
            }
        }
        self.publish(run);
        self.next.flush(run, partial).and(flow)
    }

    fn finish(&mut self, run: &RunContext) -> crate::Result<()> {
        self.link(run);
        if self.split.is_some() {
            if let Err(error) = self.finish_split(run) {
                self.publish(run);
                return Err(error);
            }
        } else {
            self.emit_until(i64::MAX, run);
        }
        self.release(run);
        self.publish(run);
        self.next.finish(run)
    }

    fn signal(&mut self, signal: Signal, run: &RunContext) {
        self.link(run);
        let ended = match signal {
            Signal::Ended(ended) => ended,
            Signal::Barrier(barrier) => {
                let horizon = self
                    .open
                    .last_key_value()
                    .map_or(i64::MIN, |(&(end, _), _)| end);
                if let Some(split) = &self.split {
                    // Split: the input before the barrier is in the windows open here or
                    // already shipped to their owners.
                    run.checkpoints
                        .need(barrier.epoch, horizon.max(split.shipped));
                }
                self.held.push_back((barrier.epoch, horizon));
                return self.release(run);
            }
            // The window's own: a window after this one has a watermark of its own.
            Signal::Watermark(watermark) => return self.advance(watermark, run),
        };
        if let Some(watermark) = ended.watermark {
            self.advance(watermark, run);
        }
        if self.split.is_some() {
            self.source_ended(run);
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
