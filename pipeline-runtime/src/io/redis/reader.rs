//! The source: reads a stream through a consumer group, and acknowledges what it handed on
//! once the run's outputs are committed.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use ::redis::{Connection, ErrorKind, RedisError, RedisResult, Value};
use serde::de::DeserializeOwned;

use super::address::{shown_url, Address, Role};
use super::entries::{
    bytes, decode_entry, pairs, parse_entries, parse_read, Entry, EntryId, IdSet,
};
use super::retry::{bad_url, no_group, retrying, transient, unexpected, Outage};
use super::{ACK_CHUNK, BLOCK, DEFAULT_MAX_ENTRY_BYTES, DEFAULT_RETRY_FOR};
use crate::io::{Commit, Record, Share, Source};

/// Where a group created by the source starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GroupStart {
    /// `$`: entries added after the group was created.
    End,
    /// `0`: every entry in the stream.
    Beginning,
}

/// What the source reads next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// This consumer's own pending entries after `after` (delivered before, never acknowledged).
    Pending { after: EntryId },
    /// Other consumers' entries idle for longer than `claim_after`, from `cursor` on.
    Claim { cursor: EntryId },
    /// Entries never delivered to the group (`>`).
    New,
}

/// See [`RedisStream::read`](super::RedisStream::read).
pub struct RedisStreamReader<T> {
    url: String,
    address: Result<Address, String>,
    field: String,
    start: GroupStart,
    claim_after: Option<Duration>,
    until_idle: Option<Duration>,
    retry_for: Duration,
    max_bytes: usize,
    conn: Option<Connection>,
    /// Whether the group is known to exist on the current connection's server.
    ready: bool,
    phase: Phase,
    /// The ids handed on (or found deleted) since the last acknowledgement: what the next
    /// acknowledgement covers, and what must not be handed on again in this run.
    since_ack: IdSet,
    /// Records handed on, for positions.
    position: u64,
    /// Whether this consumer's pending list was read once from its start (0), for the entries
    /// read by an earlier process under the same name.
    pending_read: bool,
    /// Entries of that first reading handed on so far, for the log.
    recovered: u64,
    /// The last entry delivered to this consumer as new (`>`), or where the group stood when
    /// the source opened: a group lost by the server is re-created there, and after a
    /// reconnection the consumer's pending entries after it are those whose reply was lost.
    group_at: Option<EntryId>,
    /// When an entry last arrived, or the connection came back.
    last_arrival: Instant,
    last_claim_scan: Option<Instant>,
    outage: Option<Outage>,
    _item: PhantomData<fn() -> T>,
}

impl<T> RedisStreamReader<T> {
    pub(super) fn new(url: String) -> Self {
        Self {
            address: Address::parse(&url, Role::Read),
            url,
            field: "data".into(),
            start: GroupStart::End,
            claim_after: None,
            until_idle: None,
            retry_for: DEFAULT_RETRY_FOR,
            max_bytes: DEFAULT_MAX_ENTRY_BYTES,
            conn: None,
            ready: false,
            phase: Phase::Pending {
                after: EntryId::default(),
            },
            since_ack: IdSet::default(),
            position: 0,
            pending_read: false,
            recovered: 0,
            group_at: None,
            last_arrival: Instant::now(),
            last_claim_scan: None,
            outage: None,
            _item: PhantomData,
        }
    }

    /// The entry field that holds the JSON payload (default `data`).
    pub fn field(mut self, name: impl Into<String>) -> Self {
        self.field = name.into();
        self
    }

    /// A group this source creates starts at the stream's first entry. By default it starts at
    /// the end (`$`): only entries added after it was created are read. A group that exists
    /// already goes on from where it is either way.
    pub fn from_start(mut self) -> Self {
        self.start = GroupStart::Beginning;
        self
    }

    /// Claims the group's entries pending for longer than `idle` in any consumer (one that died
    /// before acknowledging them); off by default. See [`RedisStream`](crate::io::RedisStream) for
    /// how long `idle` must be.
    pub fn claim_after(mut self, idle: Duration) -> Self {
        self.claim_after = Some(idle);
        self
    }

    /// Ends the input once no new entry has arrived for `idle` (by default the source waits for
    /// new entries until the run is asked to stop).
    pub fn until_idle(mut self, idle: Duration) -> Self {
        self.until_idle = Some(idle);
        self
    }

    /// How long to wait for a server that stopped answering before failing the run (default
    /// 30 s). The acknowledgement at the end of the run waits as long.
    pub fn retry_for(mut self, limit: Duration) -> Self {
        self.retry_for = limit;
        self
    }

    /// Payloads longer than this go to the dead letters (default 1 MiB).
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max;
        self
    }

    fn what(&self) -> String {
        match &self.address {
            Ok(a) => format!(
                "Redis stream `{}` at {} (group `{}`, consumer `{}`)",
                a.stream, a.server, a.group, a.consumer
            ),
            Err(_) => format!("Redis stream {}", shown_url(&self.url)),
        }
    }

    fn read_error(&self, message: String) -> crate::Error {
        crate::Error::Read {
            what: self.what(),
            position: self.position,
            source: std::io::Error::other(message),
        }
    }

    fn address(&self) -> crate::Result<&Address> {
        self.address
            .as_ref()
            .map_err(|e| crate::Error::Config(e.clone()))
    }

    /// Connects if needed and makes sure the group exists (where it left off, after a server
    /// lost it).
    fn prepare(&mut self) -> RedisResult<()> {
        let address = match &self.address {
            Ok(address) => address,
            Err(e) => return Err(bad_url(e)),
        };
        let reopening = self.group_at.is_some();
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(address.connect()?),
        };
        let at = match (self.group_at, self.start) {
            (Some(at), _) => at.to_string(),
            (None, GroupStart::End) => "$".into(),
            (None, GroupStart::Beginning) => "0".into(),
        };
        let created: RedisResult<()> = ::redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&address.stream)
            .arg(&address.group)
            .arg(&at)
            .arg("MKSTREAM")
            .query(conn);
        match created {
            Ok(()) if reopening => tracing::warn!(
                "the consumer group `{}` of Redis stream `{}` at {} was gone (a server restarted without persistence?): created it again, reading the entries after {at}",
                address.group,
                address.stream,
                address.server
            ),
            Ok(()) => tracing::info!(
                "created the consumer group `{}` of Redis stream `{}` at {}, starting at {}",
                address.group,
                address.stream,
                address.server,
                if at == "$" { "its end" } else { "its first entry" }
            ),
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
        if self.group_at.is_none() {
            self.group_at = Some(group_position(conn, address)?);
        }
        self.ready = true;
        // A reply lost with the connection may have delivered entries that were never handed
        // on: they are in this consumer's pending list, after the last entry that did arrive
        // (everything before it there was handed on already, unless the first reading of the
        // list, from 0, is not finished yet: then it goes on where it was).
        if self.pending_read {
            self.phase = Phase::Pending {
                after: self.group_at.unwrap_or_default(),
            };
        }
        Ok(())
    }

    /// One read: one command, whose entries are all handed on. `Ok(false)` when the input ends.
    fn read_step<E: FnMut(Record<T>)>(&mut self, max: usize, emit: &mut E) -> RedisResult<bool>
    where
        T: DeserializeOwned,
    {
        let address = match &self.address {
            Ok(address) => address,
            Err(e) => return Err(bad_url(e)),
        };
        let Some(conn) = self.conn.as_mut() else {
            self.ready = false;
            return Err(std::io::Error::from(std::io::ErrorKind::NotConnected).into());
        };
        let count = max.max(1);
        match self.phase {
            Phase::Pending { after } => {
                let reply: Value = ::redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(&address.group)
                    .arg(&address.consumer)
                    .arg("COUNT")
                    .arg(count)
                    .arg("STREAMS")
                    .arg(&address.stream)
                    .arg(after)
                    .query(conn)?;
                let entries = parse_read(reply)?;
                match entries.last() {
                    Some(last) => {
                        self.phase = Phase::Pending { after: last.id };
                        self.last_arrival = Instant::now();
                        self.recovered += self.hand_on(entries, emit);
                    }
                    None => {
                        if self.recovered > 0 {
                            tracing::info!(
                                "Redis stream `{}`: read again {} entries that consumer `{}` had read before without acknowledging them",
                                address.stream,
                                self.recovered,
                                address.consumer
                            );
                            self.recovered = 0;
                        }
                        self.pending_read = true;
                        self.phase = if self.claim_after.is_some() {
                            Phase::Claim {
                                cursor: EntryId::default(),
                            }
                        } else {
                            Phase::New
                        };
                    }
                }
                Ok(true)
            }
            Phase::Claim { cursor } => {
                let idle = self.claim_after.unwrap_or_default();
                let reply: Value = ::redis::cmd("XAUTOCLAIM")
                    .arg(&address.stream)
                    .arg(&address.group)
                    .arg(&address.consumer)
                    .arg(idle.as_millis() as u64)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(count)
                    .query(conn)?;
                // [next cursor, entries, deleted ids (Redis 7)]
                let Value::Array(parts) = reply else {
                    return Err(unexpected("unexpected reply to XAUTOCLAIM", &reply));
                };
                let mut parts = parts.into_iter();
                let next = parts.next().unwrap_or_default();
                let Some(next) = bytes(&next).and_then(EntryId::parse) else {
                    return Err(unexpected("unexpected XAUTOCLAIM cursor", &next));
                };
                let entries = parse_entries(parts.next().unwrap_or(Value::Array(Vec::new())))?;
                let (stream, group) = (address.stream.clone(), address.group.clone());
                let claimed = self.hand_on(entries, emit);
                if claimed > 0 {
                    tracing::warn!(
                        "Redis stream `{stream}`: claimed {claimed} entries pending for over {idle:?} in other consumers of group `{group}`"
                    );
                    self.last_arrival = Instant::now();
                }
                if next == EntryId::default() {
                    self.phase = Phase::New;
                    self.last_claim_scan = Some(Instant::now());
                } else {
                    self.phase = Phase::Claim { cursor: next };
                }
                Ok(true)
            }
            Phase::New => {
                if let (Some(idle), Some(scanned)) = (self.claim_after, self.last_claim_scan) {
                    // Scanning walks the whole pending list, this run's own entries included.
                    if scanned.elapsed() >= idle.max(Duration::from_secs(1)) {
                        self.phase = Phase::Claim {
                            cursor: EntryId::default(),
                        };
                        return Ok(true);
                    }
                }
                // The wait is cut to what is left of `until_idle`; once that has passed, one last
                // read without waiting: the input ends only when a read finds nothing, however
                // long the pipeline took with what came before.
                let block = match self.until_idle {
                    Some(idle) => BLOCK.min(idle.saturating_sub(self.last_arrival.elapsed())),
                    None => BLOCK,
                };
                let mut read = ::redis::cmd("XREADGROUP");
                read.arg("GROUP")
                    .arg(&address.group)
                    .arg(&address.consumer)
                    .arg("COUNT")
                    .arg(count);
                if !block.is_zero() {
                    read.arg("BLOCK").arg((block.as_millis() as u64).max(1));
                }
                let reply: Value = read
                    .arg("STREAMS")
                    .arg(&address.stream)
                    .arg(">")
                    .query(conn)?;
                let entries = parse_read(reply)?;
                match entries.last() {
                    Some(last) => {
                        self.group_at = self.group_at.max(Some(last.id));
                        self.last_arrival = Instant::now();
                        self.hand_on(entries, emit);
                        Ok(true)
                    }
                    // Nothing came: the input goes on unless it has been quiet for `until_idle`.
                    None => Ok(self
                        .until_idle
                        .is_none_or(|idle| self.last_arrival.elapsed() < idle)),
                }
            }
        }
    }

    /// Hands on each entry not handed on yet in this run, as an element or a bad record;
    /// returns how many it handed on.
    fn hand_on<E: FnMut(Record<T>)>(&mut self, entries: Vec<Entry>, emit: &mut E) -> u64
    where
        T: DeserializeOwned,
    {
        let Ok(address) = &self.address else {
            return 0;
        };
        let mut handed_on = 0;
        for entry in entries {
            if !self.since_ack.insert(entry.id) {
                continue;
            }
            let Some(fields) = entry.fields else {
                // Nothing left to read; acknowledging it takes it off the pending list.
                tracing::warn!(
                    "Redis stream `{}`: entry {} was deleted before it was acknowledged; it is acknowledged unread",
                    address.stream,
                    entry.id
                );
                continue;
            };
            self.position += 1;
            handed_on += 1;
            let record = decode_entry(
                &address.stream,
                entry.id,
                &fields,
                &self.field,
                self.max_bytes,
            );
            // The entry id is the position: it is the same when a restarted run reads the entry
            // again, so a sink can tell (see `RedisStream::write`).
            let position = entry.id.position();
            emit(match record {
                Ok(item) => Record::Good(position, item),
                Err(bad) => Record::Bad(position, bad),
            });
        }
        handed_on
    }

    /// The acknowledgement of everything handed on since the last one. Run only once the outputs
    /// made from those entries are committed.
    fn acknowledgement(&mut self) -> Option<Box<dyn Commit>> {
        let address = self.address.as_ref().ok()?;
        if self.since_ack.is_empty() {
            return None;
        }
        // Once a later acknowledgement (at a checkpoint) happens while reading goes on, these
        // ids stay pending until it has run: a claim scan in between must still skip them.
        let ids: Vec<EntryId> = self.since_ack.drain().collect();
        Some(Box::new(Acknowledge {
            address: address.clone(),
            ids,
            retry_for: self.retry_for,
        }))
    }
}

/// Where the group stands (its `last-delivered-id`), from `XINFO GROUPS`.
fn group_position(conn: &mut Connection, address: &Address) -> RedisResult<EntryId> {
    let reply: Value = ::redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&address.stream)
        .query(conn)?;
    let Value::Array(groups) = reply else {
        return Err(unexpected("unexpected reply to XINFO GROUPS", &reply));
    };
    for group in groups {
        let Some(fields) = pairs(group) else { continue };
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| bytes(k) == Some(name.as_bytes()))
                .and_then(|(_, v)| bytes(v))
        };
        if field("name") == Some(address.group.as_bytes()) {
            if let Some(id) = field("last-delivered-id").and_then(EntryId::parse) {
                return Ok(id);
            }
        }
    }
    Err(RedisError::from((
        ErrorKind::Parse,
        "XINFO GROUPS does not show the group",
        address.group.clone(),
    )))
}

impl<T: DeserializeOwned + Send> Source for RedisStreamReader<T> {
    type Item = T;

    fn describe(&self) -> String {
        self.what()
    }

    /// Each worker is a consumer of the group of its own: `NAME-w3` for worker 3 of consumer
    /// `NAME`, so the group hands each entry to one worker, and a rerun with as many workers
    /// finds each one's pending entries again (older pending entries of any consumer are claimed
    /// after the idle time).
    fn split(&mut self, share: Share) -> bool {
        if let Ok(address) = &mut self.address {
            address.consumer = format!("{}-w{}", address.consumer, share.index);
        }
        true
    }

    /// Checks the URL and tries the server once: a server not answering yet is waited for while
    /// reading, where a stop request can end the wait.
    fn open(&mut self) -> crate::Result<()> {
        self.address()?;
        self.last_arrival = Instant::now();
        match self.prepare() {
            Ok(()) => Ok(()),
            Err(e) if transient(&e) => {
                self.conn = None;
                let outage = self.outage.insert(Outage::new(e.to_string()));
                let wait = outage.failed(e.to_string());
                tracing::warn!("{} is unreachable: {e}; retrying in {wait:?}", self.what());
                Ok(())
            }
            Err(e) => Err(crate::Error::Config(format!(
                "cannot read {}: {e}",
                self.what()
            ))),
        }
    }

    fn read_chunk<E: FnMut(Record<T>)>(&mut self, max: usize, mut emit: E) -> crate::Result<bool> {
        if let Some(outage) = &self.outage {
            let now = Instant::now();
            if now < outage.next_try {
                // Short naps, so that a stop request is seen while waiting.
                std::thread::sleep((outage.next_try - now).min(BLOCK));
                return Ok(true);
            }
        }
        let mut step = || -> RedisResult<bool> {
            if !self.ready {
                self.prepare()?;
            }
            self.read_step(max, &mut emit)
        };
        let error = match step() {
            Ok(more) => {
                if let Some(outage) = self.outage.take() {
                    tracing::info!(
                        "{}: reading again after {:.1?} without the server ({} attempts)",
                        self.what(),
                        outage.since.elapsed(),
                        outage.attempts
                    );
                    // An outage is not a quiet stream: `until_idle` counts from now.
                    self.last_arrival = Instant::now();
                }
                return Ok(more);
            }
            Err(e) => e,
        };
        if no_group(&error) {
            // Destroyed while we read (or the stream deleted): `prepare` creates it again.
            self.ready = false;
            tracing::warn!("{}: {error}", self.what());
            return Ok(true);
        }
        if !transient(&error) {
            return Err(self.read_error(error.to_string()));
        }
        self.conn = None;
        self.ready = false;
        let outage = self
            .outage
            .get_or_insert_with(|| Outage::new(error.to_string()));
        let wait = outage.failed(error.to_string());
        if outage.over(self.retry_for) {
            let server = format!("the Redis server at {}", self.address()?.server);
            let message = self
                .outage
                .as_ref()
                .map(|outage| outage.gave_up(&server, self.retry_for))
                .unwrap_or_default();
            return Err(self.read_error(message));
        }
        tracing::warn!(
            "{} is unreachable: {error}; retrying in {wait:?}",
            self.what()
        );
        Ok(true)
    }

    /// At each checkpoint and at the end: `XACK` of the entries handed on since the last one,
    /// run once what was made from them has reached every sink durably.
    fn checkpoint(&mut self) -> crate::Result<Option<Box<dyn Commit>>> {
        Ok(self.acknowledgement())
    }

    fn acknowledges(&self) -> bool {
        true
    }
}

/// `XACK` of the entries a source handed on, run once the outputs made from them are committed.
struct Acknowledge {
    address: Address,
    ids: Vec<EntryId>,
    retry_for: Duration,
}

impl Commit for Acknowledge {
    fn commit(self: Box<Self>) -> crate::Result<()> {
        let Self {
            address,
            ids,
            retry_for,
        } = *self;
        let mut conn = None;
        let mut acknowledged = 0usize;
        for (done, chunk) in ids.chunks(ACK_CHUNK).enumerate() {
            let result = retrying(&address, &mut conn, retry_for, "acknowledging", |conn| {
                ::redis::cmd("XACK")
                    .arg(&address.stream)
                    .arg(&address.group)
                    .arg(chunk)
                    .query::<usize>(conn)
            });
            match result {
                Ok(n) => acknowledged += n,
                Err(error) => {
                    let left = ids.len() - done * ACK_CHUNK;
                    return Err(crate::Error::Write {
                        what: format!(
                            "the acknowledgements of Redis stream `{}` at {} (group `{}`)",
                            address.stream, address.server, address.group
                        ),
                        message: format!(
                            "{error}. The outputs are committed; {left} of the {} entries read stay pending and will be read again (duplicates, not losses)",
                            ids.len()
                        ),
                    });
                }
            }
        }
        if acknowledged < ids.len() {
            // Claimed and acknowledged by another consumer, or gone with a server's restart.
            tracing::info!(
                "Redis stream `{}`: {} of {} entries read were no longer pending in group `{}`",
                address.stream,
                ids.len() - acknowledged,
                ids.len(),
                address.group
            );
        }
        Ok(())
    }
}
