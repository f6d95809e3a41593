//! The sink: appends elements to a stream with pipelined `XADD`s.

use std::time::Duration;

use ::redis::Connection;
use serde::Serialize;

use super::address::{shown_url, Address, Role};
use super::retry::{retrying, transient};
use super::{DEFAULT_RETRY_FOR, DEFAULT_WRITE_BATCH};
use crate::io::{Commit, Sink};

/// See [`RedisStream::write`](super::RedisStream::write).
pub struct RedisStreamWriter {
    url: String,
    address: Result<Address, String>,
    field: String,
    max_len: Option<usize>,
    batch: usize,
    retry_for: Duration,
    conn: Option<Connection>,
    /// Payloads not sent yet.
    pending: Vec<Vec<u8>>,
    /// Why the sink stopped writing, once it has.
    failed: Option<String>,
}

impl RedisStreamWriter {
    pub(super) fn new(url: String) -> Self {
        Self {
            address: Address::parse(&url, Role::Write),
            url,
            field: "data".into(),
            max_len: None,
            batch: DEFAULT_WRITE_BATCH,
            retry_for: DEFAULT_RETRY_FOR,
            conn: None,
            pending: Vec::new(),
            failed: None,
        }
    }

    /// The entry field that holds the JSON payload (default `data`).
    pub fn field(mut self, name: impl Into<String>) -> Self {
        self.field = name.into();
        self
    }

    /// Trims the stream to about `n` entries as it grows (`XADD ... MAXLEN ~ n`).
    pub fn max_len(mut self, n: usize) -> Self {
        self.max_len = Some(n);
        self
    }

    /// Entries sent per pipelined round trip (default 512).
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// How long to wait for a server that stopped answering before failing the run (default
    /// 30 s).
    pub fn retry_for(mut self, limit: Duration) -> Self {
        self.retry_for = limit;
        self
    }

    fn what(&self) -> String {
        match &self.address {
            Ok(a) => format!("Redis stream `{}` at {}", a.stream, a.server),
            Err(_) => format!("Redis stream {}", shown_url(&self.url)),
        }
    }

    /// Sends the pending entries, waiting for the server up to `retry_for`.
    fn send(&mut self) -> crate::Result<()> {
        if let Some(failed) = &self.failed {
            return Err(self.write_error(failed.clone()));
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let address = self
            .address
            .as_ref()
            .map_err(|e| crate::Error::Config(e.clone()))?;
        let mut pipe = ::redis::pipe();
        for payload in &self.pending {
            let xadd = pipe.cmd("XADD").arg(&address.stream);
            if let Some(n) = self.max_len {
                xadd.arg("MAXLEN").arg("~").arg(n);
            }
            xadd.arg("*").arg(&self.field).arg(&payload[..]).ignore();
        }
        let sent = retrying(
            address,
            &mut self.conn,
            self.retry_for,
            "appending",
            |conn| pipe.query::<()>(conn),
        );
        match sent {
            Ok(()) => {
                self.pending.clear();
                Ok(())
            }
            Err(error) => {
                let message = format!("{} entries not written: {error}", self.pending.len());
                self.pending = Vec::new();
                self.failed = Some(message.clone());
                Err(self.write_error(message))
            }
        }
    }

    fn write_error(&self, message: String) -> crate::Error {
        crate::Error::Write {
            what: self.what(),
            message,
        }
    }
}

impl<T: Serialize> Sink<T> for RedisStreamWriter {
    fn describe(&self) -> String {
        self.what()
    }

    /// Checks the URL and tries the server once: a server not answering yet is waited for when
    /// the first batch is sent.
    fn open(&mut self) -> crate::Result<()> {
        let address = self
            .address
            .as_ref()
            .map_err(|e| crate::Error::Config(e.clone()))?;
        match address.connect() {
            Ok(conn) => self.conn = Some(conn),
            Err(e) if transient(&e) => tracing::warn!(
                "{} is unreachable for now: {e}; the first write waits for it",
                self.what()
            ),
            Err(e) => {
                return Err(crate::Error::Config(format!(
                    "cannot write to {}: {e}",
                    self.what()
                )))
            }
        }
        Ok(())
    }

    fn write(&mut self, item: T) -> Result<(), String> {
        if let Some(failed) = &self.failed {
            return Err(format!("the sink stopped writing earlier: {failed}"));
        }
        let payload = serde_json::to_vec(&item).map_err(|e| e.to_string())?;
        self.pending.push(payload);
        if self.pending.len() >= self.batch {
            // A failure fails the run at the next flush: the entries of the batch were taken
            // already, so this element's dead letter would not tell the whole story.
            let _ = self.send();
        }
        Ok(())
    }

    fn flush(&mut self) -> crate::Result<()> {
        self.send()
    }

    /// At a checkpoint: what was written is in the stream once `XADD` has answered.
    fn checkpoint(&mut self) -> crate::Result<bool> {
        self.send()?;
        Ok(true)
    }

    fn finish(&mut self) -> crate::Result<Option<Box<dyn Commit>>> {
        self.send()?;
        Ok(None)
    }
}
