//! Servers that stop answering: which failures may pass, and waiting for them with
//! exponential backoff up to a limit.

use std::time::Duration;

use ::redis::{Connection, ErrorKind, RedisError, RedisResult, Value};

use super::address::Address;
pub(super) use crate::io::outage::Outage;

/// Whether a failure may go away by itself: the server is unreachable, restarting or loading.
pub(super) fn transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.code(),
            Some("LOADING" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN")
        )
}

/// `open` reports a bad URL as a configuration error; this is for reads without `open`.
pub(super) fn bad_url(e: &str) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, "bad URL", e.to_owned()))
}

pub(super) fn no_group(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP")
}

pub(super) fn unexpected(what: &'static str, reply: &Value) -> RedisError {
    let mut shown = format!("{reply:?}");
    if shown.len() > 200 {
        let mut cut = 200;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push_str("...");
    }
    RedisError::from((ErrorKind::Parse, what, shown))
}

/// Runs `op` on a connection (made as needed) until it succeeds, fails for good, or the server
/// has not answered for `limit`; sleeps between attempts. For the sink and the acknowledgement,
/// whose threads have nothing else to do meanwhile.
pub(super) fn retrying<R>(
    address: &Address,
    conn: &mut Option<Connection>,
    limit: Duration,
    doing: &str,
    mut op: impl FnMut(&mut Connection) -> RedisResult<R>,
) -> Result<R, String> {
    let mut outage: Option<Outage> = None;
    loop {
        let result = match conn {
            Some(c) => op(c),
            None => address.connect().and_then(|c| op(conn.insert(c))),
        };
        let error = match result {
            Ok(r) => {
                if let Some(outage) = outage {
                    tracing::info!(
                        "Redis at {} answers again after {:.1?} ({doing})",
                        address.server,
                        outage.since.elapsed()
                    );
                }
                return Ok(r);
            }
            Err(e) => e,
        };
        if !transient(&error) {
            return Err(format!("{doing}: {error}"));
        }
        *conn = None;
        let outage = outage.get_or_insert_with(|| Outage::new(error.to_string()));
        let wait = outage.failed(error.to_string());
        if outage.over(limit) {
            return Err(format!(
                "{doing}: {}",
                outage.gave_up(&format!("the Redis server at {}", address.server), limit)
            ));
        }
        tracing::warn!(
            "Redis at {} is unreachable ({doing}): {error}; retrying in {wait:?}",
            address.server
        );
        std::thread::sleep(wait);
    }
}
