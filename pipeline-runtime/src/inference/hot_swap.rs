//! Hot swap: a watched weights file that changes is loaded beside the running model, on a thread
//! of its own, and the replicas take the new model with their next batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel as cb;

use super::replica::{load, Event};
use super::{DeviceRequest, SharedHandler};

/// What identifies a version of a watched file.
type Stamp = (SystemTime, u64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok()?, meta.len(), inode))
}

pub(crate) struct Watch {
    path: PathBuf,
    stamp: Option<Stamp>,
    poll: Duration,
    next: Instant,
    /// A reload is under way: no second one starts until it reports.
    loading: bool,
}

impl Watch {
    /// Stamps the file now, before the model is loaded, so a change during the load is not missed.
    pub fn new(path: &Path, poll: Duration) -> Self {
        Self {
            stamp: stamp(path),
            path: path.to_owned(),
            poll: poll.max(Duration::from_millis(1)),
            next: Instant::now() + poll,
            loading: false,
        }
    }

    /// When the file is next looked at.
    pub fn next_look(&self) -> Instant {
        self.next
    }

    /// The reload has reported (loaded or failed).
    pub fn reloaded(&mut self) {
        self.loading = false;
    }

    /// Looks at the file when due; when it changed (and has not gone: it may be in the middle of
    /// being replaced), loads `count` models from it beside the running ones, reporting
    /// [`Event::Reloaded`] or [`Event::ReloadFailed`].
    pub fn poll<H: SharedHandler>(
        &mut self,
        now: Instant,
        name: &str,
        count: usize,
        handler: &Arc<H>,
        device: DeviceRequest,
        events: &cb::Sender<Event<H>>,
    ) {
        if now < self.next {
            return;
        }
        self.next = now + self.poll;
        if self.loading {
            return;
        }
        let current = stamp(&self.path);
        if current.is_none() || current == self.stamp {
            return;
        }
        self.stamp = current;
        self.loading = true;
        tracing::info!(
            "model `{name}`: `{}` changed; loading it beside the running model",
            self.path.display()
        );
        let (handler, events) = (handler.clone(), events.clone());
        let spawned = std::thread::Builder::new()
            .name("tandem-model-reload".into())
            .spawn(move || {
                crate::panic::quiet_thread();
                let started = Instant::now();
                let mut models = Vec::with_capacity(count);
                let mut ids = Vec::new();
                for _ in 0..count {
                    match load(&*handler, device) {
                        Ok(loaded) => {
                            models.push(loaded.model);
                            ids = loaded.ids;
                        }
                        Err(error) => {
                            let _ = events.send(Event::ReloadFailed { error });
                            return;
                        }
                    }
                }
                let took = started.elapsed();
                let _ = events.send(Event::Reloaded { models, ids, took });
            });
        if let Err(error) = spawned {
            self.loading = false;
            tracing::warn!("cannot start a thread to reload the model: {error}");
        }
    }
}
