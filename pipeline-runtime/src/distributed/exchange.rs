//! The exchange by key of `combine_per_key` on timely (the engine-free half, the wire format and
//! the merging, is `crate::exchange`).
//!
//! One timely input per `combine_per_key` stage in every worker, exchanged by the owner worker
//! each parcel is addressed to. A worker's input time is its stage's watermark (an `i64` mapped
//! onto `u64` in order): it ships the windows it closes at its current time, then advances to its
//! new watermark, so timely's frontier at the receiving end, the smallest time any worker may
//! still send at, is the job's watermark (Beam's rule, across processes): every window ending at
//! or before it has arrived from every worker.

use std::cell::RefCell;
use std::rc::Rc;

use crossbeam_channel::{Receiver, Sender};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::Input;
use timely::dataflow::InputHandleVec;

use crate::exchange::{Endpoint, Incoming, Outgoing, Waker};

/// The coordinator's side of one `combine_per_key`'s exchange in one worker.
pub(super) struct StageEnds {
    out: Receiver<Outgoing>,
    incoming: Sender<Incoming>,
}

/// The channels of each stage: the share's ends (which wake the coordinator through `waker`)
/// and the coordinator's.
pub(super) fn channels(stages: &[u32], waker: &Waker) -> (Vec<(u32, Endpoint)>, Vec<StageEnds>) {
    stages
        .iter()
        .map(|&stage| {
            let (out_tx, out_rx) = crossbeam_channel::unbounded();
            let (in_tx, in_rx) = crossbeam_channel::unbounded();
            (
                (
                    stage,
                    Endpoint {
                        out: out_tx,
                        incoming: in_rx,
                        waker: waker.clone(),
                    },
                ),
                StageEnds {
                    out: out_rx,
                    incoming: in_tx,
                },
            )
        })
        .unzip()
}

/// A watermark as a timely time, in the same order.
fn time(watermark: i64) -> u64 {
    (watermark as u64) ^ (1 << 63)
}

fn watermark(time: u64) -> i64 {
    (time ^ (1 << 63)) as i64
}

/// What a stage's receiving operator saw: parcels not yet passed on, and the frontier (`None`
/// once empty: every worker is done).
struct Received {
    parcels: Vec<Vec<u8>>,
    frontier: Option<u64>,
}

struct Stage {
    ends: StageEnds,
    /// `None` once this worker's stage is done (dropping the handle closes it).
    input: Option<InputHandleVec<u64, (u64, Vec<u8>)>>,
    received: Rc<RefCell<Received>>,
    /// The last frontier passed on to the stage.
    told: Option<Option<u64>>,
}

/// The exchanges of one worker's `combine_per_key` stages.
pub(super) struct Transport {
    stages: Vec<Stage>,
}

impl Transport {
    /// Builds the exchange dataflow in `worker` (every worker must build the same).
    pub(super) fn build(worker: &mut timely::worker::Worker, ends: Vec<StageEnds>) -> Self {
        let stages = worker.dataflow::<u64, _, _>(|scope| {
            ends.into_iter()
                .map(|ends| {
                    let (input, stream) = scope.new_input::<Vec<(u64, Vec<u8>)>>();
                    let received = Rc::new(RefCell::new(Received {
                        parcels: Vec::new(),
                        frontier: Some(0),
                    }));
                    let into = Rc::clone(&received);
                    stream.sink(
                        Exchange::new(|parcel: &(u64, Vec<u8>)| parcel.0),
                        "combine_per_key exchange",
                        move |(input, frontier)| {
                            let mut received = into.borrow_mut();
                            input.for_each(|_, data| {
                                received.parcels.extend(data.drain(..).map(|(_, p)| p))
                            });
                            received.frontier = frontier.frontier().iter().min().copied();
                        },
                    );
                    Stage {
                        ends,
                        input: Some(input),
                        received,
                        told: None,
                    }
                })
                .collect()
        });
        Self { stages }
    }

    /// Feeds what the stages shipped into timely.
    pub(super) fn send(&mut self) {
        for stage in &mut self.stages {
            while let Ok(message) = stage.ends.out.try_recv() {
                match message {
                    Outgoing::Ship { parcels, watermark } => {
                        if let Some(input) = &mut stage.input {
                            for (owner, parcel) in parcels {
                                input.send((owner as u64, parcel));
                            }
                            let t = time(watermark);
                            if t > *input.time() {
                                input.advance_to(t);
                            }
                        }
                    }
                    Outgoing::Done => stage.input = None,
                }
            }
        }
    }

    /// Passes what arrived, and the job's watermark, on to the stages.
    pub(super) fn deliver(&mut self) {
        for stage in &mut self.stages {
            let mut received = stage.received.borrow_mut();
            for parcel in received.parcels.drain(..) {
                let _ = stage.ends.incoming.send(Incoming::Parcel(parcel));
            }
            if stage.told != Some(received.frontier) {
                stage.told = Some(received.frontier);
                let _ = stage.ends.incoming.send(match received.frontier {
                    Some(t) => Incoming::Watermark(watermark(t)),
                    None => Incoming::Closed,
                });
            }
        }
    }

    /// This worker's share has ended: whatever its stages did not close is closed now, so the
    /// other workers do not wait for it.
    pub(super) fn close(&mut self) {
        self.send();
        for stage in &mut self.stages {
            stage.input = None;
        }
    }

    /// The run is failing: the stages waiting for the others stop waiting.
    pub(super) fn fail(&mut self, why: &str) {
        for stage in &self.stages {
            let _ = stage.ends.incoming.send(Incoming::Failed(why.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_map_to_times_in_order() {
        let marks = [i64::MIN, -5, -1, 0, 1, 300_000, i64::MAX];
        for pair in marks.windows(2) {
            assert!(time(pair[0]) < time(pair[1]));
        }
        for m in marks {
            assert_eq!(watermark(time(m)), m);
        }
        assert_eq!(time(i64::MIN), 0);
    }
}
