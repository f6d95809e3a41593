//! Redis Streams in and out, on real `redis-server`s each test starts for itself: entries flow
//! through a pipeline in order and are acknowledged once the outputs are committed; bad payloads
//! are dead-lettered (and acknowledged) with the stream and the entry id; a failed run
//! acknowledges nothing, so the next run reads the same entries again; a dead consumer's entries
//! are claimed; a server that goes away is waited for, and one that does not come back fails
//! the run.

mod common;
#[path = "common/ids.rs"]
mod ids;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::Mutex;
use std::time::Duration;

use redis::Connection;
use serde::{Deserialize, Serialize};
use tandem::io::{RedisStreamReader, RedisStreamWriter};
use tandem::prelude::*;

use common::wait_for;
use ids::Ids;
use redis_server::{stream_data as contents, RedisServer};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Request {
    id: u64,
    text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Answer {
    id: u64,
    words: usize,
}

fn answer(r: Request) -> Answer {
    Answer {
        id: r.id,
        words: r.text.split_whitespace().count(),
    }
}

fn request(id: u64) -> String {
    serde_json::to_string(&Request {
        id,
        text: "word ".repeat((id % 5) as usize),
    })
    .unwrap()
}

/// Appends one entry per payload (field `data`); returns their ids.
fn add(
    conn: &mut Connection,
    stream: &str,
    payloads: impl IntoIterator<Item = String>,
) -> Vec<String> {
    let mut pipe = redis::pipe();
    for payload in payloads {
        pipe.cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("data")
            .arg(payload);
    }
    pipe.query(conn).unwrap()
}

fn requests(conn: &mut Connection, ids: std::ops::RangeInclusive<u64>) -> Vec<String> {
    add(conn, "requests", ids.map(request))
}

/// Entries of `group` delivered to a consumer and not acknowledged.
fn pending(conn: &mut Connection, stream: &str, group: &str) -> u64 {
    let summary: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .query(conn)
        .unwrap();
    match summary.first() {
        Some(redis::Value::Int(n)) => *n as u64,
        other => panic!("unexpected XPENDING reply {other:?}"),
    }
}

fn group_exists(conn: &mut Connection, stream: &str, group: &str) -> bool {
    let groups: redis::RedisResult<Vec<redis::Value>> =
        redis::cmd("XINFO").arg("GROUPS").arg(stream).query(conn);
    groups.is_ok_and(|groups| format!("{groups:?}").contains(&format!("\"{group}\"")))
}

fn xlen(conn: &mut Connection, stream: &str) -> u64 {
    redis::cmd("XLEN").arg(stream).query(conn).unwrap()
}

/// Asks the run to stop when dropped: a failed assertion while an unbounded run goes on must not
/// leave the test waiting for it forever (a thread scope joins its threads before unwinding).
struct StopOnDrop<'a>(&'a StopSignal);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop(0);
    }
}

struct Urls {
    input: String,
    output: String,
}

pipeline! {
    Answers(args: Urls) {
        read(RedisStream::<Request>::read(&args.input).from_start().until_idle(Duration::from_millis(300)))
            -> map(answer)
            -> write(RedisStream::write(&args.output));
    }
}

#[test]
fn entries_flow_in_order_into_another_stream_and_are_all_acknowledged() {
    let server = RedisServer::start();
    let mut conn = server.client();
    const N: u64 = 10_000;
    requests(&mut conn, 1..=N);
    let args = Urls {
        input: server.url("requests?group=answers&consumer=worker-1"),
        output: server.url("answers?db=3"),
    };
    let summary = Answers::run_blocking(&args, &RunConfig::default()).unwrap();
    let totals = summary.totals();
    assert_eq!((totals.read, totals.written, totals.dead), (N, N, 0));
    assert!(totals.balanced(), "{summary}");
    // `db=3` is honoured: the output is there, not in database 0.
    assert_eq!(xlen(&mut conn, "answers"), 0);
    redis::cmd("SELECT").arg(3).query::<()>(&mut conn).unwrap();
    let written: Vec<Answer> = contents(&mut conn, "answers");
    let expected: Vec<Answer> = (1..=N)
        .map(|id| answer(serde_json::from_str(&request(id)).unwrap()))
        .collect();
    assert_eq!(written, expected);
    redis::cmd("SELECT").arg(0).query::<()>(&mut conn).unwrap();
    assert_eq!(pending(&mut conn, "requests", "answers"), 0);
}

/// Split across 3 workers, each a consumer of the group: every entry is answered once, all are
/// acknowledged, and each worker had its own consumer.
#[test]
fn workers_share_a_stream_through_the_consumer_group() {
    let server = RedisServer::start();
    let mut conn = server.client();
    const N: u64 = 6_000;
    requests(&mut conn, 1..=N);
    let args = Urls {
        input: server.url("requests?group=split&consumer=worker"),
        output: server.url("answers"),
    };
    let config = RunConfig {
        cluster: tandem::cluster::Cluster::threads(3),
        ..RunConfig::default()
    };
    let summary = tandem::job::run_pipeline::<Answers>(&args, &config).unwrap();
    let totals = summary.totals();
    assert_eq!((totals.read, totals.written, totals.dead), (N, N, 0));
    let mut written: Vec<u64> = contents::<Answer>(&mut conn, "answers")
        .into_iter()
        .map(|a| a.id)
        .collect();
    written.sort();
    assert_eq!(written, (1..=N).collect::<Vec<_>>());
    assert_eq!(pending(&mut conn, "requests", "split"), 0);
    let consumers: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg("requests")
        .arg("split")
        .query(&mut conn)
        .unwrap();
    let text = format!("{consumers:?}");
    for worker in ["worker-w0", "worker-w1", "worker-w2"] {
        assert!(text.contains(worker), "no consumer {worker}: {text}");
    }
}

struct CollectArgs {
    source: Mutex<Option<RedisStreamReader<Request>>>,
    ids: Ids,
}

fn collect_args(source: RedisStreamReader<Request>, ids: Ids) -> CollectArgs {
    CollectArgs {
        source: Mutex::new(Some(source)),
        ids,
    }
}

pipeline! {
    CollectIds(args: CollectArgs) {
        read(args.source.lock().unwrap().take().unwrap())
            -> map(|r: Request| r.id)
            -> write(args.ids.clone());
    }
}

#[test]
fn bad_payloads_are_dead_lettered_with_the_stream_and_entry_id_and_acknowledged() {
    let server = RedisServer::start();
    let mut conn = server.client();
    let big = format!("{{\"id\":6,\"text\":\"{}\"}}", "a".repeat(20 * 1024 * 1024));
    let mut ids = add(
        &mut conn,
        "requests",
        [
            request(1),
            "oops{".into(),
            r#"{"id":"three","text":"x"}"#.into(),
            r#"{"id":4}"#.into(),
        ],
    );
    ids.extend(add_fields(
        &mut conn,
        "requests",
        &[("payload", "{\"id\":5}")],
    ));
    ids.extend(add(&mut conn, "requests", [big, request(7)]));
    let args = collect_args(
        RedisStream::read(server.url("requests?group=g"))
            .from_start()
            .until_idle(Duration::from_millis(300)),
        Ids::new(false),
    );
    let summary = CollectIds::run_blocking(&args, &RunConfig::default()).unwrap();
    assert_eq!(args.ids.collected.take(), [1, 7]);
    let letters: Vec<(u64, String)> = summary
        .dead_letters
        .iter()
        .map(|d| (d.position, d.error.clone()))
        .collect();
    let reasons = [
        (2, "field `data` is not a valid element: expected value"),
        (
            3,
            "field `data` is not a valid element: invalid type: string \"three\", expected u64",
        ),
        (
            4,
            "field `data` is not a valid element: missing field `text`",
        ),
        (5, "no field `data` (its fields: payload)"),
        (
            6,
            "field `data` is 20971538 bytes, more than the limit of 1048576 bytes",
        ),
    ];
    assert_eq!(letters.len(), reasons.len(), "{letters:#?}");
    for ((position, error), (nth, reason)) in letters.iter().zip(reasons) {
        let id = &ids[nth - 1];
        // A Redis record's position is its entry id, `ms * 1e6 + seq`: it survives a restart.
        let (ms, seq) = id.split_once('-').unwrap();
        let expected: u64 = ms.parse::<u64>().unwrap() * 1_000_000 + seq.parse::<u64>().unwrap();
        assert_eq!(*position, expected, "entry {id}");
        let prefix = format!("stream requests entry {id}: {reason}");
        assert!(
            error.starts_with(&prefix),
            "{error}\ndoes not start with\n{prefix}"
        );
    }
    let letter = &summary.dead_letters[4];
    assert!(
        letter
            .source
            .starts_with("Redis stream `requests` at 127.0.0.1:"),
        "{}",
        letter.source
    );
    assert!(
        letter.input.as_ref().unwrap().len() < 2048,
        "a large payload's dead letter keeps only its start"
    );
    assert_eq!(summary.dead_letters[0].input.as_deref(), Some("oops{"));
    let totals = summary.totals();
    assert_eq!((totals.read, totals.written, totals.dead), (7, 2, 5));
    // Dead-lettered entries were handled: the group has moved past all of them.
    assert_eq!(pending(&mut conn, "requests", "g"), 0);
}

fn add_fields(conn: &mut Connection, stream: &str, fields: &[(&str, &str)]) -> Vec<String> {
    let mut xadd = redis::cmd("XADD");
    xadd.arg(stream).arg("*");
    for (k, v) in fields {
        xadd.arg(*k).arg(*v);
    }
    vec![xadd.query(conn).unwrap()]
}

#[test]
fn a_failed_run_acknowledges_nothing_and_the_next_run_reads_the_same_entries() {
    let server = RedisServer::start();
    let mut conn = server.client();
    requests(&mut conn, 1..=100);
    let url = server.url("requests?group=g&consumer=worker-1");
    let reader = || {
        RedisStream::read(&url)
            .from_start()
            .until_idle(Duration::from_millis(300))
    };

    let failing = collect_args(reader(), Ids::new(true));
    let error = CollectIds::run_blocking(&failing, &RunConfig::default()).unwrap_err();
    assert!(error.to_string().contains("the disk is full"), "{error}");
    assert!(failing.ids.collected.take().is_empty());
    assert_eq!(
        pending(&mut conn, "requests", "g"),
        100,
        "read, not acknowledged"
    );

    // The same consumer, restarted, reads its pending entries first; nothing is lost.
    let rerun = collect_args(reader(), Ids::new(false));
    let summary = CollectIds::run_blocking(&rerun, &RunConfig::default()).unwrap();
    assert_eq!(rerun.ids.collected.take(), (1..=100).collect::<Vec<_>>());
    assert_eq!(summary.totals().read, 100);
    assert_eq!(pending(&mut conn, "requests", "g"), 0);
}

#[test]
fn a_dead_consumers_entries_are_claimed_only_with_claim_after() {
    let server = RedisServer::start();
    let mut conn = server.client();
    requests(&mut conn, 1..=100);
    let reader = |consumer: &str| {
        RedisStream::read(server.url(&format!("requests?group=g&consumer={consumer}")))
            .from_start()
            .until_idle(Duration::from_millis(300))
    };
    let dead = collect_args(reader("worker-1"), Ids::new(true));
    CollectIds::run_blocking(&dead, &RunConfig::default()).unwrap_err();
    assert_eq!(pending(&mut conn, "requests", "g"), 100);
    requests(&mut conn, 101..=110);

    // Another consumer reads only the new entries by default: worker-1's stay with worker-1.
    let plain = collect_args(reader("worker-2"), Ids::new(false));
    CollectIds::run_blocking(&plain, &RunConfig::default()).unwrap();
    assert_eq!(plain.ids.collected.take(), (101..=110).collect::<Vec<_>>());
    assert_eq!(pending(&mut conn, "requests", "g"), 100);

    // Pending for longer than `claim_after`: claimed, handed on once, acknowledged.
    std::thread::sleep(Duration::from_millis(200));
    let claiming = collect_args(
        reader("worker-3").claim_after(Duration::from_millis(100)),
        Ids::new(false),
    );
    CollectIds::run_blocking(&claiming, &RunConfig::default()).unwrap();
    assert_eq!(claiming.ids.collected.take(), (1..=100).collect::<Vec<_>>());
    assert_eq!(pending(&mut conn, "requests", "g"), 0);
}

#[test]
fn a_new_group_starts_at_the_end_of_the_stream_by_default() {
    let server = RedisServer::start();
    let mut conn = server.client();
    requests(&mut conn, 1..=5);
    let stop = StopSignal::new();
    let config = RunConfig {
        stop: stop.clone(),
        ..RunConfig::default()
    };
    // Unbounded: it waits for entries until it is asked to stop.
    let args = collect_args(
        RedisStream::read(server.url("requests?group=g")),
        Ids::new(false),
    );
    let summary = std::thread::scope(|scope| {
        let run = scope.spawn(|| CollectIds::run_blocking(&args, &config));
        let _stop = StopOnDrop(&stop);
        assert!(wait_for(Duration::from_secs(30), || group_exists(
            &mut conn, "requests", "g"
        )));
        requests(&mut conn, 6..=8);
        // Delivered to the source (pending until the run's end), then stop.
        assert!(wait_for(Duration::from_secs(30), || pending(
            &mut conn, "requests", "g"
        ) == 3));
        stop.stop(0);
        run.join().unwrap()
    })
    .unwrap();
    assert_eq!(args.ids.collected.take(), [6, 7, 8]);
    assert_eq!(summary.stopped_by, Some(0));
    assert_eq!(pending(&mut conn, "requests", "g"), 0);
}

struct RelayArgs {
    source: Mutex<Option<RedisStreamReader<Request>>>,
    sink: Mutex<Option<RedisStreamWriter>>,
}

fn relay_args(source: RedisStreamReader<Request>, sink: RedisStreamWriter) -> RelayArgs {
    RelayArgs {
        source: Mutex::new(Some(source)),
        sink: Mutex::new(Some(sink)),
    }
}

pipeline! {
    Relay(args: RelayArgs) {
        read(args.source.lock().unwrap().take().unwrap())
            -> map(answer)
            -> write(args.sink.lock().unwrap().take().unwrap());
    }
}

#[test]
fn the_source_waits_for_a_restarted_server_and_reads_on() {
    let mut input = RedisServer::start();
    let output = RedisServer::start();
    let (mut inp, mut out) = (input.client(), output.client());
    let stop = StopSignal::new();
    let config = RunConfig {
        stop: stop.clone(),
        ..RunConfig::default()
    };
    let args = relay_args(
        RedisStream::read(input.url("requests?group=g")),
        RedisStream::write(output.url("answers")),
    );
    let summary = std::thread::scope(|scope| {
        let run = scope.spawn(|| Relay::run_blocking(&args, &config));
        let _stop = StopOnDrop(&stop);
        assert!(wait_for(Duration::from_secs(30), || group_exists(
            &mut inp, "requests", "g"
        )));
        requests(&mut inp, 1..=100);
        // The sink sends what it holds whenever the pipeline waits for input.
        assert!(wait_for(Duration::from_secs(30), || xlen(
            &mut out, "answers"
        ) == 100));

        // Down for a second while the source waits for entries; back empty (no persistence).
        input.stop();
        std::thread::sleep(Duration::from_secs(1));
        input.restart();
        inp = input.client();
        // Entries added before the source is back are not skipped: it creates its group again
        // where it had got to, not at the new stream's end.
        requests(&mut inp, 101..=150);
        assert!(
            wait_for(Duration::from_secs(30), || group_exists(
                &mut inp, "requests", "g"
            )),
            "the source did not come back"
        );
        requests(&mut inp, 151..=200);
        assert!(wait_for(Duration::from_secs(30), || xlen(
            &mut out, "answers"
        ) == 200));
        stop.stop(0);
        run.join().unwrap()
    })
    .unwrap();
    let totals = summary.totals();
    assert_eq!((totals.read, totals.written, totals.dead), (200, 200, 0));
    let ids: Vec<u64> = contents::<Answer>(&mut out, "answers")
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>());
    assert_eq!(pending(&mut inp, "requests", "g"), 0);
}

#[test]
fn a_server_that_does_not_come_back_fails_the_run_after_retry_for() {
    let mut server = RedisServer::start();
    let mut conn = server.client();
    let args = collect_args(
        RedisStream::read(server.url("requests?group=g")).retry_for(Duration::from_secs(1)),
        Ids::new(false),
    );
    let stop = StopSignal::new();
    let config = RunConfig {
        stop: stop.clone(),
        ..RunConfig::default()
    };
    let error = std::thread::scope(|scope| {
        let run = scope.spawn(|| CollectIds::run_blocking(&args, &config));
        let _stop = StopOnDrop(&stop);
        assert!(wait_for(Duration::from_secs(30), || group_exists(
            &mut conn, "requests", "g"
        )));
        requests(&mut conn, 1..=10);
        assert!(wait_for(Duration::from_secs(30), || pending(
            &mut conn, "requests", "g"
        ) == 10));
        server.stop();
        run.join().unwrap()
    })
    .unwrap_err()
    .to_string();
    let port = server.port;
    for expected in [
        format!("reading Redis stream `requests` at 127.0.0.1:{port} (group `g`"),
        // "after record N": the server counts entries delivered before the reader has handed
        // them all on, so N is 10 or fewer.
        "failed after record ".into(),
        format!(": the Redis server at 127.0.0.1:{port} did not answer for"),
        "`retry_for` is 1s".into(),
    ] {
        assert!(
            error.contains(&expected),
            "{error}\ndoes not contain\n{expected}"
        );
    }
    assert!(args.ids.collected.take().is_empty(), "nothing is committed");
}

#[test]
fn an_output_server_that_does_not_come_back_fails_an_unbounded_run_and_acknowledges_nothing() {
    let input = RedisServer::start();
    let mut output = RedisServer::start();
    let mut conn = input.client();
    let port = output.port;
    output.stop();
    let stop = StopSignal::new();
    let config = RunConfig {
        stop: stop.clone(),
        ..RunConfig::default()
    };
    let args = relay_args(
        RedisStream::read(input.url("requests?group=g")).from_start(),
        RedisStream::write(format!("redis://127.0.0.1:{port}/answers"))
            .retry_for(Duration::from_millis(500)),
    );
    requests(&mut conn, 1..=10);
    let result = std::thread::scope(|scope| {
        let run = scope.spawn(|| Relay::run_blocking(&args, &config));
        let _stop = StopOnDrop(&stop);
        // The source never ends by itself: only the sink's failure can end the run.
        assert!(
            wait_for(Duration::from_secs(60), || run.is_finished()),
            "the run went on without its output"
        );
        run.join().unwrap()
    });
    let error = result.unwrap_err().to_string();
    let expected = format!(
        "writing to Redis stream `answers` at 127.0.0.1:{port} failed: 10 entries not written: appending: the Redis server at 127.0.0.1:{port} did not answer"
    );
    assert!(
        error.contains(&expected),
        "{error}\ndoes not contain\n{expected}"
    );
    assert_eq!(pending(&mut conn, "requests", "g"), 10);
}

#[test]
fn max_len_trims_the_output_stream_as_it_grows() {
    let server = RedisServer::start();
    let mut conn = server.client();
    requests(&mut conn, 1..=1000);
    let args = relay_args(
        RedisStream::read(server.url("requests?group=g"))
            .from_start()
            .until_idle(Duration::from_millis(300)),
        RedisStream::write(server.url("answers")).max_len(100),
    );
    let summary = Relay::run_blocking(&args, &RunConfig::default()).unwrap();
    assert_eq!(summary.totals().written, 1000);
    // `MAXLEN ~` trims whole nodes of the stream: at least 100 entries stay, not all 1000.
    let kept = xlen(&mut conn, "answers");
    assert!((100..1000).contains(&kept), "{kept} entries kept");
    let answers: Vec<Answer> = contents(&mut conn, "answers");
    assert_eq!(answers.last().unwrap().id, 1000);
}

#[test]
fn a_url_without_a_group_fails_before_anything_is_read() {
    let args = collect_args(
        RedisStream::read("redis://127.0.0.1:1/requests"),
        Ids::new(false),
    );
    let error = CollectIds::run_blocking(&args, &RunConfig::default()).unwrap_err();
    assert!(matches!(error, tandem::Error::Config(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "Redis stream URL `redis://127.0.0.1:1/requests`: it names no consumer group; write `redis://HOST:PORT/STREAM?group=GROUP` (the consumers of one group share the stream's entries)"
    );
}

#[test]
fn a_key_that_is_not_a_stream_fails_the_run_before_anything_is_read() {
    let server = RedisServer::start();
    let mut conn = server.client();
    redis::cmd("SET")
        .arg("requests")
        .arg("a string")
        .query::<()>(&mut conn)
        .unwrap();
    let args = collect_args(
        RedisStream::read(server.url("requests?group=g")),
        Ids::new(false),
    );
    let error = CollectIds::run_blocking(&args, &RunConfig::default()).unwrap_err();
    assert!(matches!(error, tandem::Error::Config(_)), "{error:?}");
    let expected = format!(
        "cannot read Redis stream `requests` at 127.0.0.1:{} (group `g`, consumer `",
        server.port
    );
    assert!(error.to_string().starts_with(&expected), "{error}");
    assert!(error.to_string().contains("WRONGTYPE"), "{error}");
}

#[test]
fn a_live_run_acknowledges_at_each_checkpoint_while_it_runs() {
    let server = RedisServer::start();
    let mut conn = server.client();
    let stop = StopSignal::new();
    let config = RunConfig {
        stop: stop.clone(),
        checkpoints: tandem::checkpoint::CheckpointPolicy {
            interval: Some(Duration::from_millis(100)),
            every: None,
        },
        ..RunConfig::default()
    };
    let args = relay_args(
        RedisStream::read(server.url("requests?group=g")).from_start(),
        RedisStream::write(server.url("answers")),
    );
    std::thread::scope(|scope| {
        let run = scope.spawn(|| Relay::run_blocking(&args, &config));
        let _stop = StopOnDrop(&stop);
        for round in 0..3u64 {
            let first = round * 1000 + 1;
            requests(&mut conn, first..=first + 999);
            // Written and acknowledged while the run goes on, not at its end.
            assert!(
                wait_for(Duration::from_secs(30), || xlen(&mut conn, "answers")
                    == (round + 1) * 1000
                    && pending(&mut conn, "requests", "g") == 0),
                "round {round}: {} answers, {} pending",
                xlen(&mut conn, "answers"),
                pending(&mut conn, "requests", "g")
            );
            assert!(!run.is_finished());
        }
        stop.stop(0);
        let summary = run.join().unwrap().unwrap();
        assert_eq!(summary.totals().read, 3000);
    });
    let answers: Vec<Answer> = contents(&mut conn, "answers");
    assert_eq!(answers.len(), 3000);
    assert!(answers.iter().zip(1..).all(|(a, id)| a.id == id));
}

/// What `SplitWindows` watches: the server, and at every 100th request seen, the group's pending
/// entries, the entries it has handed out so far, and then the requests counted in the windows
/// written so far.
struct SplitWindowArgs {
    input: String,
    output: String,
    server: Mutex<Connection>,
    /// (entries handed out to the group's consumers, entries pending, requests counted in the
    /// windows written), as seen mid-run.
    seen: Mutex<Vec<(u64, u64, u64)>>,
}

impl SplitWindowArgs {
    fn watch(&self, r: &Request) {
        if !r.id.is_multiple_of(100) {
            return;
        }
        let mut conn = self.server.lock().unwrap();
        let groups: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg("requests")
            .query(&mut *conn)
            .unwrap();
        let count = |field: &str| match groups[0].get(field) {
            Some(redis::Value::Int(n)) => *n as u64,
            other => panic!("XINFO GROUPS {field}: {other:?}"),
        };
        let handed_out = count("entries-read");
        let pending = count("pending");
        let counts: Vec<Combined<u64, u64>> = contents(&mut conn, "counts");
        let written = counts.iter().map(|c| c.value).sum();
        self.seen
            .lock()
            .unwrap()
            .push((handed_out, pending, written));
        drop(conn);
        // Slow enough for several checkpoints (every 10 ms) to complete during the run.
        std::thread::sleep(Duration::from_millis(15));
    }
}

pipeline! {
    SplitWindows(args: SplitWindowArgs) {
        read(RedisStream::<Request>::read(&args.input).from_start().until_idle(Duration::from_millis(300)))
            -> inspect(|r: &Request| args.watch(r))
            -> window(Fixed::millis(100), |r: &Request| r.id)
            -> combine_per_key(|r: &Request| r.id % 3, Count)
            -> write(RedisStream::write(&args.output));
    }
}

/// Split across workers with a `combine_per_key`, a worker's windows are written by the workers
/// owning their keys, so its epochs are job-wide: an entry is acknowledged once the windows
/// holding it have been written durably by whichever worker owns them. Mid-run, entries are
/// acknowledged, never more than the windows written count; at the end, all of them.
#[test]
fn split_windows_acknowledge_the_input_once_the_job_has_written_its_windows() {
    let server = RedisServer::start();
    let mut conn = server.client();
    const N: u64 = 3_000;
    requests(&mut conn, 1..=N);
    let args = SplitWindowArgs {
        input: server.url("requests?group=windows&consumer=worker"),
        output: server.url("counts"),
        server: Mutex::new(server.client()),
        seen: Mutex::new(Vec::new()),
    };
    let config = RunConfig {
        cluster: tandem::cluster::Cluster::threads(2),
        // Small chunks: a barrier can follow every 50 entries.
        batch_size: 50,
        checkpoints: tandem::checkpoint::CheckpointPolicy {
            interval: Some(Duration::from_millis(10)),
            every: None,
        },
        ..RunConfig::default()
    };
    let summary = tandem::job::run_pipeline::<SplitWindows>(&args, &config).unwrap();
    assert!(summary.totals().balanced(), "{summary}");
    assert_eq!(summary.totals().read, N);
    let counts: Vec<Combined<u64, u64>> = contents(&mut conn, "counts");
    assert_eq!(counts.iter().map(|c| c.value).sum::<u64>(), N);
    let seen = args.seen.lock().unwrap().clone();
    assert!(seen.len() >= 20, "{seen:?}");
    // Acknowledged (handed out and no longer pending) never runs ahead of the windows written
    // (looked at after the group, so it can only have grown since).
    assert!(
        seen.iter()
            .all(|&(out, pending, written)| out - pending <= written),
        "{seen:?}"
    );
    // The sink is durable at every checkpoint (the Redis stream): entries are acknowledged while
    // the run goes on.
    assert!(
        seen.iter().any(|&(out, pending, _)| pending < out),
        "nothing was acknowledged mid-run: {seen:?}"
    );
    assert_eq!(pending(&mut conn, "requests", "windows"), 0);
}
