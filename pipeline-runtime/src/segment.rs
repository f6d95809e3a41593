//! A segment as a task run step by step: a source (or a boundary's channel) and its fused chain.
//!
//! One run of a whole input runs each task on a thread of its own, where a step may wait (for
//! input, for room in a full channel: that is the backpressure). A worker of a split run runs its
//! tasks as timely operators on its timely worker's thread (see `distributed`), where nothing may
//! wait for anything this thread must do: there a step that cannot go on says so
//! ([`Step::Wait`]) and is scheduled again when woken or after a pause, and the stages report
//! backpressure through [`Flow::Wait`] instead of waiting.

use std::time::{Duration, Instant};

use crate::checkpoint::FINAL_EPOCH;
use crate::context::{Pos, RunContext};
use crate::io::{Record, Source};
pub use crate::ops::Wake;
use crate::ops::{Parcel, Receiver};
use crate::push::{Barrier, BarrierCount, Ended, Flow, Push, Signal};
use crate::Result;

/// What a step of a task did.
pub enum Step {
    /// It did some work and has more: schedule it again.
    Busy,
    /// It cannot go on now: schedule it again when woken (`None`: its channel's senders wake it)
    /// or after this pause (downstream is full, or waits for other workers).
    Wait(Option<Duration>),
    /// It has ended (and is not stepped again).
    Done(Result<()>),
}

/// How long a task that cannot go on pauses before it looks again.
pub const PAUSE: Duration = Duration::from_millis(1);

/// A segment run step by step.
pub trait Task {
    /// Does the next chunk of work.
    fn step(&mut self) -> Step;

    /// What wakes this task when its channel has something (only a task reading a channel
    /// keeps it).
    fn wake_with(&mut self, _wake: Wake) {}
}

/// Runs a task on this thread to its end (one run of a whole input: a thread per segment).
pub fn run_to_end(task: &mut dyn Task) -> Result<()> {
    loop {
        match task.step() {
            Step::Busy => {}
            Step::Wait(pause) => std::thread::sleep(pause.unwrap_or(PAUSE)),
            Step::Done(result) => return result,
        }
    }
}

/// Where a task is: reading its input, or past its end and waiting until its chain can finish
/// without waiting (a split `combine_per_key` waits for the other workers' windows).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reading,
    Ending,
    Done,
}

/// The last steps of every task: once `flush` no longer asks to wait, `finish`.
#[inline]
fn end<T, C: Push<T>>(chain: &mut C, phase: &mut Phase, run: &RunContext) -> Step {
    if chain.flush(run, true) == Flow::Wait {
        return Step::Wait(Some(PAUSE));
    }
    *phase = Phase::Done;
    Step::Done(chain.finish(run))
}

/// Whether the chain still says to wait (asked again before reading on after it did); if so,
/// `waiting` is set again.
#[inline]
fn still_waits<T, C: Push<T>>(chain: &mut C, waiting: &mut bool, run: &RunContext) -> bool {
    *waiting = chain.flush(run, false) == Flow::Wait;
    *waiting
}

/// A segment that starts at a source: each step reads one chunk.
pub(crate) struct SourceTask<'a, S, C> {
    id: u32,
    source: S,
    chain: C,
    chunk: usize,
    run: &'a RunContext,
    /// When partial batches last went on.
    last_partial: Instant,
    /// The epochs whose barriers this source has sent.
    epoch: u64,
    /// Downstream said to wait: it is asked again before anything more is read.
    waiting: bool,
    phase: Phase,
}

impl<'a, S: Source, C: Push<S::Item>> SourceTask<'a, S, C> {
    pub(crate) fn new(id: u32, source: S, chain: C, chunk: usize, run: &'a RunContext) -> Self {
        Self {
            id,
            source,
            chain,
            chunk,
            run,
            last_partial: Instant::now(),
            epoch: 0,
            waiting: false,
            phase: Phase::Reading,
        }
    }

    /// The input has ended (or the run stops reading): tells the chain, registers what
    /// acknowledges the input read after the last barrier (acknowledged after the run's commit).
    fn ended(&mut self) -> Result<()> {
        self.phase = Phase::Ending;
        self.chain.signal(
            Signal::Ended(Ended {
                source: self.id,
                watermark: None,
            }),
            self.run,
        );
        self.run
            .checkpoints
            .register(FINAL_EPOCH, self.source.checkpoint()?);
        Ok(())
    }

    #[inline]
    fn read(&mut self) -> Result<Step> {
        // While the source keeps up with its input (full chunks), partial batches go on at most
        // this often: sending one per chunk would halve the batches. A short chunk means the
        // source has caught up and its next read may wait (a live stream): what is buffered goes
        // on now, or it would linger for that wait (up to 250 ms for a Redis stream).
        const LINGER: Duration = Duration::from_millis(50);
        let run = self.run;
        if run.stop_reading() {
            self.ended()?;
            return Ok(Step::Busy);
        }
        if std::mem::take(&mut self.waiting) && still_waits(&mut self.chain, &mut self.waiting, run)
        {
            return Ok(Step::Wait(Some(PAUSE)));
        }
        let (id, chunk) = (self.id, self.chunk);
        let chain = &mut self.chain;
        let mut read = 0u64;
        let more = self.source.read_chunk(chunk, |record| {
            read += 1;
            match record {
                Record::Good(index, item) => chain.push(item, Pos { source: id, index }, run),
                Record::Bad(index, bad) => {
                    run.dead_letter(id, Pos { source: id, index }, bad.error, bad.raw)
                }
            }
        });
        run.stats.add_input(id, read);
        let more = more?;
        // Every epoch started since the last chunk ends here for this source: what it read so
        // far is acknowledged once the epoch is complete (see `checkpoint`).
        let latest = run.checkpoints.due(read);
        if more && self.epoch < latest {
            end_epochs(
                &mut self.source,
                &mut self.chain,
                &mut self.epoch,
                latest,
                run,
            )?;
        }
        let partial = read < chunk as u64 || self.last_partial.elapsed() >= LINGER;
        if partial {
            self.last_partial = Instant::now();
        }
        match self.chain.flush(run, partial) {
            Flow::Stop => self.ended()?,
            _ if !more => self.ended()?,
            // Downstream is full: read on once it has room.
            Flow::Wait => {
                self.waiting = true;
                return Ok(Step::Wait(Some(PAUSE)));
            }
            Flow::Continue => {}
        }
        Ok(Step::Busy)
    }
}

impl<S: Source, C: Push<S::Item>> Task for SourceTask<'_, S, C> {
    fn step(&mut self) -> Step {
        match self.phase {
            Phase::Reading => self.read().unwrap_or_else(|error| {
                // The run fails with the error; its outputs are not committed.
                self.phase = Phase::Done;
                Step::Done(Err(error))
            }),
            Phase::Ending => end(&mut self.chain, &mut self.phase, self.run),
            Phase::Done => Step::Done(Ok(())),
        }
    }
}

/// Sends the barriers of epochs `epoch + 1 ..= latest` down `chain`, each after registering what
/// acknowledges the input read before it. Out of line, so that the loop reading a chunk is
/// compiled as it was without checkpoints.
#[cold]
#[inline(never)]
fn end_epochs<S: Source, C: Push<S::Item>>(
    source: &mut S,
    chain: &mut C,
    epoch: &mut u64,
    latest: u64,
    run: &RunContext,
) -> Result<()> {
    while *epoch < latest {
        *epoch += 1;
        run.checkpoints.register(*epoch, source.checkpoint()?);
        chain.signal(Signal::Barrier(Barrier { epoch: *epoch }), run);
    }
    Ok(())
}

/// The segment of a source this worker does not read (another reads it whole): it ends at once.
pub(crate) struct UnreadTask<'a, T, C> {
    id: u32,
    chain: C,
    run: &'a RunContext,
    phase: Phase,
    _item: std::marker::PhantomData<fn(T)>,
}

impl<'a, T, C: Push<T>> UnreadTask<'a, T, C> {
    pub(crate) fn new(id: u32, chain: C, run: &'a RunContext) -> Self {
        Self {
            id,
            chain,
            run,
            phase: Phase::Reading,
            _item: std::marker::PhantomData,
        }
    }
}

impl<T, C: Push<T>> Task for UnreadTask<'_, T, C> {
    fn step(&mut self) -> Step {
        match self.phase {
            Phase::Reading => {
                self.phase = Phase::Ending;
                self.chain.signal(
                    Signal::Ended(Ended {
                        source: self.id,
                        watermark: None,
                    }),
                    self.run,
                );
                Step::Busy
            }
            Phase::Ending => end(&mut self.chain, &mut self.phase, self.run),
            Phase::Done => Step::Done(Ok(())),
        }
    }
}

/// A segment that starts at a boundary's channel: each step takes what has arrived, up to
/// [`BURST`] parcels.
pub(crate) struct ReceiverTask<'a, T, C> {
    rx: Receiver<T>,
    chain: C,
    run: &'a RunContext,
    /// Whether a step may wait for the channel (a thread of its own).
    blocking: bool,
    /// The senders still open, for checkpoint alignment over them.
    open: usize,
    aligned: BarrierCount,
    /// Downstream said to wait: it is asked again before anything more is taken.
    waiting: bool,
    phase: Phase,
}

/// The most parcels a receiving task takes in one step before it lets other tasks run.
const BURST: usize = 64;

impl<'a, T, C: Push<T>> ReceiverTask<'a, T, C> {
    pub(crate) fn new(rx: Receiver<T>, chain: C, run: &'a RunContext, blocking: bool) -> Self {
        Self {
            open: rx.senders,
            rx,
            chain,
            run,
            blocking,
            aligned: BarrierCount::default(),
            waiting: false,
            phase: Phase::Reading,
        }
    }

    #[inline]
    fn receive(&mut self) -> Step {
        let run = self.run;
        if std::mem::take(&mut self.waiting) && still_waits(&mut self.chain, &mut self.waiting, run)
        {
            return Step::Wait(Some(PAUSE));
        }
        for _ in 0..BURST {
            let parcel = match self.rx.try_recv() {
                Ok(parcel) => parcel,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return self.ended(),
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                    // About to wait: send on what is buffered so nothing lingers downstream.
                    let flow = self.chain.flush(run, true);
                    if let Some(step) = self.after(flow) {
                        return step;
                    }
                    if !self.blocking {
                        // Its senders wake it.
                        return Step::Wait(None);
                    }
                    match self.rx.recv() {
                        Some(parcel) => parcel,
                        None => return self.ended(),
                    }
                }
            };
            match parcel {
                Parcel::Batch(batch) => {
                    for (pos, item) in batch {
                        self.chain.push(item, pos, run);
                    }
                }
                Parcel::Signal(Signal::Barrier(barrier)) => self.aligned.arrive(barrier),
                Parcel::Signal(signal) => self.chain.signal(signal, run),
                Parcel::Closed => self.open = self.open.saturating_sub(1),
            }
            // A barrier goes on once every sender still open has delivered it.
            while let Some(barrier) = self.aligned.next_aligned(self.open) {
                self.chain.signal(Signal::Barrier(barrier), run);
                self.rx.alignment.pass(barrier.epoch);
            }
            let flow = self.chain.flush(run, false);
            if let Some(step) = self.after(flow) {
                return step;
            }
        }
        Step::Busy
    }

    /// Its input has ended (or downstream has gone).
    fn ended(&mut self) -> Step {
        self.phase = Phase::Ending;
        Step::Busy
    }

    /// What a flush's answer means for this step: `None` to go on taking parcels.
    fn after(&mut self, flow: Flow) -> Option<Step> {
        match flow {
            Flow::Stop => Some(self.ended()),
            Flow::Wait => {
                self.waiting = true;
                Some(Step::Wait(Some(PAUSE)))
            }
            Flow::Continue => None,
        }
    }
}

impl<T, C: Push<T>> Task for ReceiverTask<'_, T, C> {
    fn step(&mut self) -> Step {
        match self.phase {
            Phase::Reading => self.receive(),
            Phase::Ending => end(&mut self.chain, &mut self.phase, self.run),
            Phase::Done => Step::Done(Ok(())),
        }
    }

    fn wake_with(&mut self, wake: Wake) {
        self.rx.wake_with(wake);
    }
}
