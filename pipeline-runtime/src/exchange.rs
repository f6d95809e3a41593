//! The exchange by key behind `combine_per_key` in a run split across workers.
//!
//! In a split run every worker reads its own share of the input, so the elements of one key in
//! one window are spread over the workers. Each worker's `combine_per_key` folds what it has
//! (pre-aggregation: one accumulator per window and key, Beam's combiner lifting) and, once its
//! own watermark has passed a window's end, ships each key's accumulator to the key's *owner*
//! (a stable hash of the key's bytes, modulo the number of workers). The owner merges the
//! accumulators of every worker with `Combiner::merge`, in the order of the workers (so the
//! result does not depend on arrival order), and emits the window once the *job's* watermark (the
//! smallest of every worker's) has passed its end. The results of a key therefore come out of one
//! worker only, and the stages after `combine_per_key` run on that worker.
//!
//! This module is the engine-free half: the wire format (bincode: `[sender u32]` then, per
//! entry, the window, the key, the accumulator and the position of the last element folded in)
//! and the channels between a `combine_per_key` and the transport. The transport (timely's
//! exchange, with its frontier as the job's watermark) is in `distributed`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::io::Pos;
use crate::window::Window;

/// What a `combine_per_key` sends towards the other workers.
#[derive(Debug)]
pub enum Outgoing {
    /// Accumulators for the windows this worker has closed (one byte parcel per owner worker),
    /// then this worker's watermark: every window ending at or before it has been shipped.
    Ship {
        parcels: Vec<(usize, Vec<u8>)>,
        watermark: i64,
    },
    /// Everything is shipped: this worker sends nothing more to this stage.
    Done,
}

/// What reaches a `combine_per_key` from the other workers (and itself).
#[derive(Debug)]
pub enum Incoming {
    /// Accumulators of keys this worker owns.
    Parcel(Vec<u8>),
    /// The job's watermark: every worker has shipped every window ending at or before it.
    Watermark(i64),
    /// Every worker is done: nothing more will arrive.
    Closed,
    /// The run is failing elsewhere: stop waiting.
    Failed(String),
}

/// One `combine_per_key`'s ends of the exchange.
pub struct Endpoint {
    pub out: crossbeam_channel::Sender<Outgoing>,
    pub incoming: crossbeam_channel::Receiver<Incoming>,
    /// Wakes the worker's coordinator when the stage is done.
    pub waker: Waker,
}

impl Endpoint {
    /// Sends `message` towards the other workers; `false` if the coordinator has stopped.
    /// `Done` wakes the coordinator, so that the end of the run does not wait for its next
    /// round; shipments wait for it (waking it for each cost more than it saved: measured in
    /// `benches/combine_exchange.rs`, 2 workers 33 -> 38 ms, against 29 ms waking it at the end).
    pub(crate) fn ship(&self, message: Outgoing) -> bool {
        let done = matches!(message, Outgoing::Done);
        let sent = self.out.send(message).is_ok();
        if done {
            self.waker.wake();
        }
        sent
    }
}

/// Wakes a worker's timely thread (parked between its rounds) when a `combine_per_key` is done
/// shipping, so that its last shipment goes at once rather than after the next pause. (The
/// stages and the exchange run on the same thread: this only cuts its next park short.)
#[derive(Clone, Debug, Default)]
pub struct Waker(std::sync::Arc<std::sync::OnceLock<std::thread::Thread>>);

impl Waker {
    /// Called by the coordinator, on its own thread: the thread to wake.
    pub fn register(&self) {
        let _ = self.0.set(std::thread::current());
    }

    pub fn wake(&self) {
        if let Some(thread) = self.0.get() {
            thread.unpark();
        }
    }
}

/// The exchange ends of one worker's share, one per `combine_per_key` stage.
pub struct Exchanges {
    /// Workers in the whole job, and this one's index among them.
    pub workers: usize,
    pub me: usize,
    ends: Mutex<Vec<(u32, Option<Endpoint>)>>,
    /// Shipped by this worker: entries (window, key, accumulator) and bytes.
    pub(crate) records: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

impl Exchanges {
    pub fn new(workers: usize, me: usize, ends: Vec<(u32, Endpoint)>) -> Self {
        Self {
            workers,
            me,
            ends: Mutex::new(ends.into_iter().map(|(s, e)| (s, Some(e))).collect()),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// The ends of stage `stage` (once).
    pub(crate) fn take(&self, stage: u32) -> Option<Endpoint> {
        let mut ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        ends.iter_mut()
            .find(|(s, _)| *s == stage)
            .and_then(|(_, e)| e.take())
    }

    /// The `combine_per_key` stages exchanging.
    pub fn stages(&self) -> usize {
        self.ends.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// What this worker shipped: entries and bytes.
    pub fn shipped(&self) -> (u64, u64) {
        (
            self.records.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// Whether accumulators are combined before they are shipped (the default). With
/// `TANDEM_EXCHANGE_PREAGGREGATE=0`, each element is shipped as an accumulator of its own: only
/// to measure what pre-aggregation saves (`benches/combine_exchange.rs`). Read once per stage and
/// run.
pub(crate) fn preaggregate() -> bool {
    std::env::var("TANDEM_EXCHANGE_PREAGGREGATE").map_or(true, |v| v != "0")
}

/// Builds the parcels of one shipment: entries routed to their key's owner.
pub(crate) struct Packer {
    workers: usize,
    me: u32,
    parcels: Vec<Vec<u8>>,
    key: Vec<u8>,
    pub(crate) records: u64,
}

impl Packer {
    pub(crate) fn new(workers: usize, me: usize) -> Self {
        Self {
            workers: workers.max(1),
            me: me as u32,
            parcels: vec![Vec::new(); workers.max(1)],
            key: Vec::new(),
            records: 0,
        }
    }

    /// Adds one entry to its owner's parcel.
    pub(crate) fn add<K: Serialize, A: Serialize>(
        &mut self,
        window: Window,
        key: &K,
        acc: &A,
        pos: Pos,
    ) -> Result<(), String> {
        self.key.clear();
        bincode::serialize_into(&mut self.key, key).map_err(|e| e.to_string())?;
        let owner = crc32fast::hash(&self.key) as usize % self.workers;
        let parcel = &mut self.parcels[owner];
        if parcel.is_empty() {
            parcel.extend_from_slice(&self.me.to_le_bytes());
        }
        bincode::serialize_into(&mut *parcel, &(window.start, window.end))
            .map_err(|e| e.to_string())?;
        parcel.extend_from_slice(&self.key);
        bincode::serialize_into(&mut *parcel, acc).map_err(|e| e.to_string())?;
        bincode::serialize_into(&mut *parcel, &(pos.source, pos.index))
            .map_err(|e| e.to_string())?;
        self.records += 1;
        Ok(())
    }

    /// The non-empty parcels, by owner, and their size in bytes.
    pub(crate) fn parcels(&mut self) -> (Vec<(usize, Vec<u8>)>, u64) {
        let parcels: Vec<(usize, Vec<u8>)> = self
            .parcels
            .iter_mut()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .map(|(owner, p)| (owner, std::mem::take(p)))
            .collect();
        let bytes = parcels.iter().map(|(_, p)| p.len() as u64).sum();
        (parcels, bytes)
    }
}

/// One entry of a parcel.
pub(crate) struct Entry<K, A> {
    pub window: Window,
    pub key: K,
    pub acc: A,
    pub pos: Pos,
}

/// Reads a parcel: its sender and its entries.
pub(crate) fn unpack<K: DeserializeOwned, A: DeserializeOwned>(
    parcel: &[u8],
) -> Result<(usize, Vec<Entry<K, A>>), String> {
    let bad = |e: bincode::Error| format!("a parcel from another worker is unreadable: {e}");
    let (head, mut rest) = parcel
        .split_at_checked(4)
        .ok_or("a parcel from another worker is truncated")?;
    let sender = u32::from_le_bytes(head.try_into().expect("4 bytes")) as usize;
    let mut entries = Vec::new();
    while !rest.is_empty() {
        let (start, end): (i64, i64) = bincode::deserialize_from(&mut rest).map_err(bad)?;
        let key = bincode::deserialize_from(&mut rest).map_err(bad)?;
        let acc = bincode::deserialize_from(&mut rest).map_err(bad)?;
        let (source, index) = bincode::deserialize_from(&mut rest).map_err(bad)?;
        entries.push(Entry {
            window: Window { start, end },
            key,
            acc,
            pos: Pos { source, index },
        });
    }
    Ok((sender, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parcels_round_trip_and_route_a_key_to_one_owner() {
        let mut packer = Packer::new(3, 1);
        let w = Window { start: 0, end: 10 };
        let pos = Pos {
            source: 0,
            index: 7,
        };
        for (key, acc) in [("a", (1u64, 2u64)), ("b", (3, 4)), ("a", (5, 6))] {
            packer.add(w, &key.to_string(), &acc, pos).unwrap();
        }
        let (parcels, bytes) = packer.parcels();
        assert_eq!(bytes, parcels.iter().map(|p| p.1.len() as u64).sum::<u64>());
        let mut seen = Vec::new();
        for (owner, parcel) in &parcels {
            let (sender, entries) = unpack::<String, (u64, u64)>(parcel).unwrap();
            assert_eq!(sender, 1);
            for e in entries {
                assert_eq!((e.window, e.pos), (w, pos));
                seen.push((*owner, e.key, e.acc));
            }
        }
        seen.sort();
        assert_eq!(seen.len(), 3);
        // Both "a" entries went to the same owner.
        let owners: Vec<usize> = seen.iter().filter(|s| s.1 == "a").map(|s| s.0).collect();
        assert_eq!(owners[0], owners[1]);
        assert!(unpack::<String, (u64, u64)>(&parcels[0].1[..6]).is_err());
    }
}
