//! Stream URLs: `redis://[user:password@]host[:port]/STREAM[?group=G&consumer=C&db=N]`.

use crate::io::percent::decode;
use ::redis::{Connection, ConnectionInfo, RedisResult};

use super::{BLOCK, CONNECT_TIMEOUT, IO_TIMEOUT};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Read,
    Write,
}

/// A parsed stream URL.
#[derive(Clone, Debug)]
pub(super) struct Address {
    pub info: ConnectionInfo,
    /// `host:port` (and the database when not 0), for messages: never the password.
    pub server: String,
    pub stream: String,
    pub group: String,
    pub consumer: String,
}

impl Address {
    pub fn parse(text: &str, role: Role) -> Result<Self, String> {
        let fail = |why: String| {
            Err(format!(
                "Redis stream URL `{}`: {why}",
                redact(text).unwrap_or_else(|| text.to_owned())
            ))
        };
        let usage = match role {
            Role::Read => "redis://HOST:PORT/STREAM?group=GROUP",
            Role::Write => "redis://HOST:PORT/STREAM",
        };
        let url = match url::Url::parse(text) {
            Ok(url) => url,
            Err(e) => return fail(format!("not a URL ({e}); write `{usage}`")),
        };
        if url.scheme() != "redis" {
            return fail(format!(
                "the scheme must be `redis://` (`{}://` is not supported); write `{usage}`",
                url.scheme()
            ));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return fail(format!("it names no host; write `{usage}`")),
        };
        let port = url.port().unwrap_or(6379);
        let path = url.path().strip_prefix('/').unwrap_or(url.path());
        let stream = match decode(path) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => return fail(format!("it names no stream; write `{usage}`")),
            Err(e) => return fail(e),
        };
        let (mut group, mut consumer, mut db) = (None, None, None);
        for (key, value) in url.query_pairs() {
            let slot = match &*key {
                "group" => &mut group,
                "consumer" => &mut consumer,
                "db" => &mut db,
                other => {
                    return fail(format!(
                    "unknown parameter `{other}` (the parameters are `group`, `consumer` and `db`)"
                ))
                }
            };
            if slot.is_some() {
                return fail(format!("`{key}` is given twice"));
            }
            if value.is_empty() {
                return fail(format!("`{key}` is empty"));
            }
            *slot = Some(value.into_owned());
        }
        let db: i64 = match db.as_deref().map(str::parse::<u32>) {
            None => 0,
            Some(Ok(n)) => n.into(),
            Some(Err(_)) => {
                return fail(format!(
                    "`db={}` is not a database number",
                    db.unwrap_or_default()
                ))
            }
        };
        match role {
            Role::Read if group.is_none() => {
                return fail(format!(
                    "it names no consumer group; write `{usage}` (the consumers of one group share the stream's entries)"
                ))
            }
            Role::Write if group.is_some() || consumer.is_some() => {
                return fail(
                    "a sink appends with XADD and reads through no consumer group: remove `group=` and `consumer=`"
                        .into(),
                )
            }
            _ => {}
        }
        let mut redis = ::redis::RedisConnectionInfo::default()
            .set_db(db)
            // `CLIENT SETINFO` is only known from Redis 7.2 on.
            .set_skip_set_lib_name();
        if !url.username().is_empty() {
            match decode(url.username()) {
                Ok(user) => redis = redis.set_username(user),
                Err(e) => return fail(e),
            }
        }
        if let Some(password) = url.password() {
            match decode(password) {
                Ok(password) => redis = redis.set_password(password),
                Err(e) => return fail(e),
            }
        }
        let info = match ::redis::IntoConnectionInfo::into_connection_info(
            ::redis::ConnectionAddr::Tcp(host.clone(), port),
        ) {
            Ok(info) => info.set_redis_settings(redis),
            Err(e) => return fail(e.to_string()),
        };
        let shown_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Ok(Self {
            info,
            server: match db {
                0 => format!("{shown_host}:{port}"),
                db => format!("{shown_host}:{port} db {db}"),
            },
            stream,
            group: group.unwrap_or_default(),
            consumer: consumer.unwrap_or_else(default_consumer),
        })
    }

    pub fn connect(&self) -> RedisResult<Connection> {
        let conn = ::redis::Client::open(self.info.clone())?
            .get_connection_with_timeout(CONNECT_TIMEOUT)?;
        conn.set_read_timeout(Some(BLOCK + IO_TIMEOUT))?;
        conn.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(conn)
    }
}

/// The URL without its password, for messages; `None` if it does not parse.
fn redact(text: &str) -> Option<String> {
    let mut url = url::Url::parse(text).ok()?;
    if url.password().is_some() {
        url.set_password(Some("***")).ok()?;
    }
    Some(url.to_string())
}

/// What a URL that does not parse is called in `describe`: without what could be a password.
pub(super) fn shown_url(text: &str) -> String {
    redact(text).unwrap_or_else(|| match (text.find("://"), text.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &text[..scheme + 3], &text[at..])
        }
        _ => text.to_owned(),
    })
}

/// `HOST-PID`: unique among live processes, new for every process.
fn default_consumer() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tandem".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(url: &str) -> Result<Address, String> {
        Address::parse(url, Role::Read)
    }

    #[test]
    fn a_full_url_names_server_stream_group_consumer_and_db() {
        let a =
            read("redis://user:p%40ss@cache.local:6380/req%2Fin?group=g&consumer=c1&db=2").unwrap();
        assert_eq!(a.stream, "req/in");
        assert_eq!((a.group.as_str(), a.consumer.as_str()), ("g", "c1"));
        assert_eq!(a.server, "cache.local:6380 db 2");
        assert_eq!(a.info.redis_settings().db(), 2);
        assert_eq!(a.info.redis_settings().username(), Some("user"));
        assert_eq!(a.info.redis_settings().password(), Some("p@ss"));
    }

    #[test]
    fn the_port_defaults_to_6379_and_the_consumer_to_host_and_pid() {
        let a = read("redis://127.0.0.1/requests?group=g").unwrap();
        assert_eq!(a.server, "127.0.0.1:6379");
        assert!(
            a.consumer.ends_with(&format!("-{}", std::process::id())),
            "{}",
            a.consumer
        );
    }

    #[test]
    fn mistakes_in_the_url_are_explained() {
        for (url, role, expected) in [
            ("redis://h:1/?group=g", Role::Read, "names no stream"),
            ("redis://h:1/s", Role::Read, "names no consumer group"),
            ("redis://h:1/s?group=", Role::Read, "`group` is empty"),
            ("redis://h:1/s?group=a&group=b", Role::Read, "given twice"),
            ("redis://h:1/s?group=g&db=x", Role::Read, "`db=x` is not"),
            (
                "redis://h:1/s?group=g&count=3",
                Role::Read,
                "unknown parameter `count`",
            ),
            (
                "rediss://h:1/s?group=g",
                Role::Read,
                "`rediss://` is not supported",
            ),
            ("h:1/s", Role::Read, "the scheme must be"),
            ("not a url", Role::Read, "not a URL"),
            ("redis://h:1/s?group=g", Role::Write, "remove `group=`"),
        ] {
            let error = Address::parse(url, role).unwrap_err();
            assert!(error.contains(expected), "{url}: {error}");
        }
    }

    #[test]
    fn passwords_never_appear_in_messages() {
        let error = read("redis://u:secret@h:1/s").unwrap_err();
        assert!(!error.contains("secret"), "{error}");
        assert_eq!(shown_url("redis//u:secret@h"), "redis//u:secret@h");
        assert!(!shown_url("xx://u:secret@h:1:2:3/").contains("secret"));
    }
}
