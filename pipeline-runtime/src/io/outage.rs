//! Waiting for a server (Redis) or a cluster (Kafka) that stopped answering: when to try again,
//! and when to give up.

use std::time::{Duration, Instant};

/// The first wait after a failed attempt; each further failure doubles it, up to `MAX_BACKOFF`.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(50);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(crate) struct Outage {
    pub since: Instant,
    pub attempts: u32,
    pub next_try: Instant,
    pub last_error: String,
}

impl Outage {
    /// An outage that `error` began; the next attempt after `FIRST_BACKOFF`.
    pub fn new(error: String) -> Self {
        let now = Instant::now();
        Self {
            since: now,
            attempts: 0,
            next_try: now + FIRST_BACKOFF,
            last_error: error,
        }
    }

    /// Records a failed attempt; returns the wait before the next one.
    pub fn failed(&mut self, error: String) -> Duration {
        self.attempts += 1;
        self.last_error = error;
        let wait = FIRST_BACKOFF
            .saturating_mul(1 << (self.attempts - 1).min(16))
            .min(MAX_BACKOFF);
        self.next_try = Instant::now() + wait;
        wait
    }

    pub fn over(&self, limit: Duration) -> bool {
        self.since.elapsed() >= limit
    }

    /// Why the run gives up on `what` (`the Redis server at HOST:PORT`).
    pub fn gave_up(&self, what: &str, limit: Duration) -> String {
        format!(
            "{what} did not answer for {:.1?} ({} attempt{}, `retry_for` is {limit:?}); last error: {}",
            self.since.elapsed(),
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            self.last_error
        )
    }
}
