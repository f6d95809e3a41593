//! Topic URLs: `kafka://HOST[:PORT][,HOST[:PORT]...]/TOPIC[?group=G]`.

use crate::io::percent::decode;

const DEFAULT_PORT: u16 = 9092;
/// Kafka refuses longer topic names.
const MAX_TOPIC_LEN: usize = 249;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Read,
    Write,
}

/// A parsed topic URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Address {
    /// `host:port,host:port`: librdkafka's `bootstrap.servers`, and what messages call the
    /// cluster.
    pub brokers: String,
    pub topic: String,
    /// Empty for a sink.
    pub group: String,
}

impl Address {
    pub fn parse(text: &str, role: Role) -> Result<Self, String> {
        let fail = |why: String| Err(format!("Kafka URL `{}`: {why}", shown_url(text)));
        let usage = match role {
            Role::Read => "kafka://HOST:PORT/TOPIC?group=GROUP",
            Role::Write => "kafka://HOST:PORT/TOPIC",
        };
        let Some(rest) = text.strip_prefix("kafka://") else {
            return match text.split_once("://") {
                Some((scheme, _)) => fail(format!(
                    "the scheme must be `kafka://` (`{scheme}://` is not supported); write `{usage}`"
                )),
                None => fail(format!("not a URL; write `{usage}`")),
            };
        };
        let (authority, path_and_query) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return fail(
                "user names and passwords are not supported (this build of librdkafka has no SASL)"
                    .into(),
            );
        }
        let mut brokers = Vec::new();
        for broker in authority.split(',') {
            match broker_address(broker) {
                Ok(broker) => brokers.push(broker),
                Err(why) => return fail(format!("{why}; write `{usage}`")),
            }
        }
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        let topic = match decode(path.strip_prefix('/').unwrap_or(path)) {
            Ok(topic) if topic.is_empty() => {
                return fail(format!("it names no topic; write `{usage}`"))
            }
            Ok(topic) => topic,
            Err(e) => return fail(e),
        };
        if let Err(why) = check_topic(&topic) {
            return fail(why);
        }
        let mut group = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (key, value) = match (decode(key), decode(value)) {
                (Ok(key), Ok(value)) => (key, value),
                (Err(e), _) | (_, Err(e)) => return fail(e),
            };
            if key != "group" {
                return fail(format!(
                    "unknown parameter `{key}` (the only parameter is `group`; set librdkafka's own with `.config(key, value)`)"
                ));
            }
            if group.is_some() {
                return fail("`group` is given twice".into());
            }
            if value.is_empty() {
                return fail("`group` is empty".into());
            }
            group = Some(value);
        }
        match role {
            Role::Read if group.is_none() => {
                return fail(format!(
                    "it names no consumer group; write `{usage}` (the members of one group share the topic's partitions, and the group keeps their offsets)"
                ))
            }
            Role::Write if group.is_some() => {
                return fail("a sink produces and belongs to no consumer group: remove `group=`".into())
            }
            _ => {}
        }
        Ok(Self {
            brokers: brokers.join(","),
            topic,
            group: group.unwrap_or_default(),
        })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, as librdkafka takes it.
fn broker_address(text: &str) -> Result<String, String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("`{text}` is not a broker address (no `]`)"));
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("`{text}` is not a broker address")),
            },
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(if text.is_empty() {
            "it names no broker".into()
        } else {
            format!("`{text}` names no host")
        });
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err(format!("`{host}` is not a host name"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("`{port}` is not a port number (in `{text}`)")),
        },
    };
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// Kafka's rule for topic names.
fn check_topic(topic: &str) -> Result<(), String> {
    if topic == "." || topic == ".." {
        return Err(format!("`{topic}` is not a topic name"));
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(format!(
            "the topic name is {} characters long, more than Kafka's {MAX_TOPIC_LEN}",
            topic.len()
        ));
    }
    match topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "the topic `{topic}` holds `{c}`: Kafka's topic names hold only letters, digits, `.`, `_` and `-`"
        )),
        None => Ok(()),
    }
}

/// The URL for messages, without what could be a password (`user:secret@`).
pub(super) fn shown_url(text: &str) -> String {
    let authority_start = text.find("://").map_or(0, |at| at + 3);
    let authority_end = text[authority_start..]
        .find(['/', '?'])
        .map_or(text.len(), |at| authority_start + at);
    match text[authority_start..authority_end].rfind('@') {
        Some(at) => format!(
            "{}***{}",
            &text[..authority_start],
            &text[authority_start + at..]
        ),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(url: &str) -> Result<Address, String> {
        Address::parse(url, Role::Read)
    }

    #[test]
    fn a_url_names_brokers_topic_and_group() {
        let a =
            read("kafka://k1.local:9093,10.0.0.2,[::1]:9094/requests.v2?group=ranker%2Fa").unwrap();
        assert_eq!(
            a,
            Address {
                brokers: "k1.local:9093,10.0.0.2:9092,[::1]:9094".into(),
                topic: "requests.v2".into(),
                group: "ranker/a".into(),
            }
        );
        let w = Address::parse("kafka://127.0.0.1:1234/answers", Role::Write).unwrap();
        assert_eq!(
            (w.brokers.as_str(), w.topic.as_str(), w.group.as_str()),
            ("127.0.0.1:1234", "answers", "")
        );
    }

    #[test]
    fn mistakes_in_the_url_are_explained() {
        for (url, role, expected) in [
            ("kafka://h:1/?group=g", Role::Read, "names no topic"),
            ("kafka://h:1?group=g", Role::Read, "names no topic"),
            ("kafka://h:1/t", Role::Read, "names no consumer group"),
            ("kafka://h:1/t?group=", Role::Read, "`group` is empty"),
            ("kafka://h:1/t?group=a&group=b", Role::Read, "given twice"),
            (
                "kafka://h:1/t?group=g&offset=earliest",
                Role::Read,
                "unknown parameter `offset`",
            ),
            ("kafka://h:1/t?group=g", Role::Write, "remove `group=`"),
            ("kafka:///t?group=g", Role::Read, "names no broker"),
            ("kafka://h:1,/t?group=g", Role::Read, "names no broker"),
            ("kafka://:1/t?group=g", Role::Read, "`:1` names no host"),
            (
                "kafka://h:x/t?group=g",
                Role::Read,
                "`x` is not a port number",
            ),
            (
                "kafka://h:0/t?group=g",
                Role::Read,
                "`0` is not a port number",
            ),
            ("kafka://h:70000/t?group=g", Role::Read, "not a port number"),
            ("kafka://[::1/t?group=g", Role::Read, "no `]`"),
            ("kafka://h:1/a%2Fb?group=g", Role::Read, "holds `/`"),
            ("kafka://h:1/a%zz?group=g", Role::Read, "not valid percent"),
            ("kafka://h:1/..?group=g", Role::Read, "not a topic name"),
            ("kafka://u:secret@h:1/t?group=g", Role::Read, "no SASL"),
            (
                "redis://h:1/t?group=g",
                Role::Read,
                "the scheme must be `kafka://` (`redis://` is not supported)",
            ),
            ("h:1/t", Role::Read, "not a URL"),
        ] {
            let error = Address::parse(url, role).unwrap_err();
            assert!(error.contains(expected), "{url}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
        let long = format!("kafka://h/{}?group=g", "t".repeat(250));
        assert!(read(&long).unwrap_err().contains("more than Kafka's 249"));
    }

    #[test]
    fn passwords_never_appear_in_messages() {
        assert_eq!(
            shown_url("kafka://u:secret@h:1/t?x=a@b"),
            "kafka://***@h:1/t?x=a@b"
        );
        assert_eq!(shown_url("kafka://h:1/t?x=a@b"), "kafka://h:1/t?x=a@b");
    }
}
