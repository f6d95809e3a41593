//! The sink: appends elements to a stream with pipelined `XADD`s.

use std::time::Duration;

use ::redis::Connection;
use serde::Serialize;

use super::address::{shown_url, Address, Role};
use super::retry::{retrying, transient};
use super::{DEFAULT_RETRY_FOR, DEFAULT_WRITE_BATCH};
use crate::io::{Commit, Pos, Sink};

/// Appends each entry of a batch unless its id is among the ids written (`ZADD NX`), atomically
/// per batch. KEYS: the stream, the set of ids written. ARGV: the time (ms), the field, `MAXLEN ~`
/// (empty for none), then an id and a payload per entry. Returns how many it appended.
const APPEND_ONCE: &str = r#"
local appended = 0
for i = 4, #ARGV, 2 do
  if redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[i]) == 1 then
    if ARGV[3] ~= '' then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', ARGV[2], ARGV[i + 1])
    else
      redis.call('XADD', KEYS[1], '*', ARGV[2], ARGV[i + 1])
    end
    appended = appended + 1
  end
end
return appended
"#;

/// How long the ids of written elements are kept by default (see `deduplicate_for`).
pub const DEFAULT_DEDUPLICATE_FOR: Duration = Duration::from_secs(24 * 3600);

/// See [`RedisStream::write`](super::RedisStream::write).
pub struct RedisStreamWriter {
    url: String,
    address: Result<Address, String>,
    field: String,
    max_len: Option<usize>,
    batch: usize,
    retry_for: Duration,
    conn: Option<Connection>,
    /// Payloads not sent yet, each with its id when it is written once.
    pending: Vec<(Option<String>, Vec<u8>)>,
    /// How long the ids of written elements are kept; `None`: no ids (at least once).
    deduplicate_for: Option<Duration>,
    /// The position of the last element and how many elements had it before (a `flat_map`'s
    /// outputs, a window's results share their input's position).
    last: Option<(Pos, u32)>,
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
            deduplicate_for: Some(DEFAULT_DEDUPLICATE_FOR),
            last: None,
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

    /// Writes every element at least once instead of exactly once: no id is kept, and after a
    /// crash the outputs of the epoch that was not complete appear again.
    pub fn at_least_once(mut self) -> Self {
        self.deduplicate_for = None;
        self
    }

    /// How long the id of each written element is kept to refuse it a second time (default 24
    /// hours): longer than a crashed pipeline can take to be restarted.
    pub fn deduplicate_for(mut self, keep: Duration) -> Self {
        self.deduplicate_for = Some(keep);
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
        let written = written_key(&address.stream);
        let now = now_ms();
        let max_len = self.max_len.map_or(String::new(), |n| n.to_string());
        // Entries with ids go in one script call per run of them, in order with the others.
        let mut once: Option<::redis::Cmd> = None;
        for (id, payload) in &self.pending {
            match id {
                Some(id) => {
                    let eval = once.get_or_insert_with(|| {
                        let mut eval = ::redis::cmd("EVAL");
                        eval.arg(APPEND_ONCE)
                            .arg(2)
                            .arg(&address.stream)
                            .arg(&written)
                            .arg(now)
                            .arg(&self.field)
                            .arg(&max_len);
                        eval
                    });
                    eval.arg(id).arg(&payload[..]);
                }
                None => {
                    if let Some(eval) = once.take() {
                        pipe.add_command(eval).ignore();
                    }
                    let xadd = pipe.cmd("XADD").arg(&address.stream);
                    if let Some(n) = self.max_len {
                        xadd.arg("MAXLEN").arg("~").arg(n);
                    }
                    xadd.arg("*").arg(&self.field).arg(&payload[..]).ignore();
                }
            }
        }
        if let Some(eval) = once.take() {
            pipe.add_command(eval).ignore();
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
        self.append(None, &item)
    }

    /// With the element's position: its id, `SOURCE:POSITION:N` (`N`: how many elements of that
    /// position came before it), makes it written once.
    fn write_at(&mut self, item: T, pos: Pos) -> Result<(), String> {
        if self.deduplicate_for.is_none() {
            return self.append(None, &item);
        }
        let nth = match &mut self.last {
            Some((last, n)) if *last == pos => {
                *n += 1;
                *n
            }
            last => {
                *last = Some((pos, 0));
                0
            }
        };
        self.append(Some(format!("{}:{}:{nth}", pos.source, pos.index)), &item)
    }

    fn flush(&mut self) -> crate::Result<()> {
        self.send()
    }

    /// At a checkpoint: what was written is in the stream once `XADD` has answered; ids older
    /// than `deduplicate_for` are forgotten.
    fn checkpoint(&mut self) -> crate::Result<bool> {
        self.send()?;
        self.forget_old_ids()?;
        Ok(true)
    }

    fn finish(&mut self) -> crate::Result<Option<Box<dyn Commit>>> {
        self.send()?;
        self.forget_old_ids()?;
        Ok(None)
    }
}

impl RedisStreamWriter {
    fn append<T: Serialize>(&mut self, id: Option<String>, item: &T) -> Result<(), String> {
        if let Some(failed) = &self.failed {
            return Err(format!("the sink stopped writing earlier: {failed}"));
        }
        let payload = serde_json::to_vec(item).map_err(|e| e.to_string())?;
        self.pending.push((id, payload));
        if self.pending.len() >= self.batch {
            // A failure fails the run at the next flush: the entries of the batch were taken
            // already, so this element's dead letter would not tell the whole story.
            let _ = self.send();
        }
        Ok(())
    }

    fn forget_old_ids(&mut self) -> crate::Result<()> {
        let (Some(keep), Ok(address)) = (self.deduplicate_for, &self.address) else {
            return Ok(());
        };
        let before = now_ms().saturating_sub(keep.as_millis() as u64);
        let written = written_key(&address.stream);
        let mut cmd = ::redis::cmd("ZREMRANGEBYSCORE");
        cmd.arg(&written).arg("-inf").arg(format!("({before}"));
        retrying(
            address,
            &mut self.conn,
            self.retry_for,
            "forgetting old ids",
            |conn| cmd.query::<()>(conn),
        )
        .map_err(|e| self.write_error(e.to_string()))
    }
}

/// The sorted set of the ids written to `stream` (scored by time), in the stream's hash slot.
fn written_key(stream: &str) -> String {
    format!("{{{stream}}}:tandem-written")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
