//! Kafka in and out, on librdkafka's mock cluster: no Kafka broker can be installed here, so each
//! test starts a `MockCluster` of its own (librdkafka's in-process brokers, listening on local
//! ports, speaking the Kafka protocol to the real librdkafka clients). Messages flow through a
//! pipeline from one topic to another and the group's offsets are committed at the end; bad
//! payloads are dead-lettered with the topic, the partition and the offset; a failed run commits
//! nothing, so the next run reads the same messages again; a pipeline killed (SIGKILL, in a child
//! process) twice and restarted writes every input, and deduplicated by key exactly once; a
//! cluster that goes away fails the run after `retry_for`.

mod common;
#[path = "common/ids.rs"]
mod ids;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tandem::io::{KafkaReader, KafkaWriter};
use tandem::prelude::*;

use common::wait_for;
use ids::Ids;

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Request {
    id: u64,
    text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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

fn request(id: u64) -> Vec<u8> {
    serde_json::to_vec(&Request {
        id,
        text: "word ".repeat((id % 5) as usize),
    })
    .unwrap()
}

/// One message as read back: where it is, its key and its value.
#[derive(Clone, Debug)]
struct Stored {
    partition: i32,
    offset: i64,
    key: Option<String>,
    value: Option<Vec<u8>>,
}

/// A mock cluster of one broker, and clients to prepare and inspect its topics.
struct Cluster {
    mock: MockCluster<'static, DefaultProducerContext>,
    servers: String,
}

impl Cluster {
    fn start() -> Self {
        let mock = MockCluster::new(1).unwrap();
        let servers = mock.bootstrap_servers();
        Self { mock, servers }
    }

    fn topic(&self, name: &str, partitions: i32) {
        self.mock.create_topic(name, partitions, 1).unwrap();
    }

    fn url(&self, path: &str) -> String {
        format!("kafka://{}/{path}", self.servers)
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.servers);
        config
    }

    /// Produces each value to its partition, in order; returns where each went.
    fn produce(
        &self,
        topic: &str,
        messages: impl IntoIterator<Item = (i32, Option<Vec<u8>>)>,
    ) -> Vec<(i32, i64)> {
        let producer: BaseProducer = self
            .config()
            .set("message.max.bytes", "10000000")
            .create()
            .unwrap();
        let ends = self.ends(topic);
        let mut next: BTreeMap<i32, i64> = ends
            .iter()
            .copied()
            .enumerate()
            .map(|(p, e)| (p as i32, e))
            .collect();
        let mut placed = Vec::new();
        for (partition, value) in messages {
            let mut record: BaseRecord<'_, (), Vec<u8>> =
                BaseRecord::to(topic).partition(partition);
            if let Some(value) = &value {
                record = record.payload(value);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
            let offset = next.entry(partition).or_default();
            placed.push((partition, *offset));
            *offset += 1;
        }
        producer.flush(TIMEOUT).unwrap();
        placed
    }

    /// The end (high watermark) of each partition of `topic`.
    fn ends(&self, topic: &str) -> Vec<i64> {
        let consumer: BaseConsumer = self.config().create().unwrap();
        let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).unwrap();
        let partitions = metadata.topics()[0].partitions().len() as i32;
        (0..partitions)
            .map(|p| consumer.fetch_watermarks(topic, p, TIMEOUT).unwrap().1)
            .collect()
    }

    /// Every message of `topic`, by partition and offset.
    fn messages(&self, topic: &str) -> Vec<Stored> {
        let ends = self.ends(topic);
        let total: i64 = ends.iter().sum();
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", "tests-reading-back")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        for p in 0..ends.len() as i32 {
            list.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&list).unwrap();
        let mut stored = Vec::new();
        let complete = wait_for(TIMEOUT, || {
            while let Some(message) = consumer.poll(Duration::from_millis(10)) {
                let message = message.unwrap();
                stored.push(Stored {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message
                        .key()
                        .map(|k| String::from_utf8(k.to_vec()).unwrap()),
                    value: message.payload().map(<[u8]>::to_vec),
                });
            }
            stored.len() as i64 >= total
        });
        assert!(complete, "read {} of {total} messages", stored.len());
        stored.sort_by_key(|s| (s.partition, s.offset));
        stored
    }

    /// The offsets `group` has committed for each partition of `topic` (`None`: none).
    fn committed(&self, group: &str, topic: &str) -> Vec<Option<i64>> {
        let partitions = self.ends(topic).len() as i32;
        let consumer: BaseConsumer = self.config().set("group.id", group).create().unwrap();
        let mut list = TopicPartitionList::new();
        for p in 0..partitions {
            list.add_partition(topic, p);
        }
        let committed = consumer.committed_offsets(list, TIMEOUT).unwrap();
        (0..partitions)
            .map(
                |p| match committed.find_partition(topic, p).unwrap().offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                },
            )
            .collect()
    }

    fn committed_total(&self, group: &str, topic: &str) -> i64 {
        self.committed(group, topic).iter().flatten().sum()
    }
}

struct Urls {
    input: String,
    output: String,
}

pipeline! {
    Answers(args: Urls) {
        read(Kafka::<Request>::read(&args.input).from_start().until_idle(Duration::from_secs(1)))
            -> map(answer)
            -> write(Kafka::write(&args.output));
    }
}

/// The answer and the input message it came from, for each output message: its key names the
/// source stage and the input's position, `partition << 48 | offset`.
fn answers_by_input(stored: &[Stored]) -> Vec<((i32, i64), Answer)> {
    stored
        .iter()
        .map(|s| {
            let key = s.key.as_deref().expect("every output message has a key");
            let parts: Vec<&str> = key.split(':').collect();
            assert_eq!(parts.len(), 3, "key {key}");
            assert_eq!(parts[2], "0", "one output per input: key {key}");
            let position: u64 = parts[1].parse().unwrap();
            let answer: Answer = serde_json::from_slice(s.value.as_deref().unwrap()).unwrap();
            (Kafka::partition_offset(position), answer)
        })
        .collect()
}

#[test]
fn ten_thousand_messages_flow_into_another_topic_and_the_group_commits_their_end() {
    let cluster = Cluster::start();
    cluster.topic("requests", 3);
    cluster.topic("answers", 3);
    const N: u64 = 10_000;
    let placed = cluster.produce(
        "requests",
        (1..=N).map(|id| ((id % 3) as i32, Some(request(id)))),
    );
    let args = Urls {
        input: cluster.url("requests?group=answers"),
        output: cluster.url("answers"),
    };
    let summary = Answers::run_blocking(&args, &RunConfig::default()).unwrap();
    let totals = summary.totals();
    assert_eq!((totals.read, totals.written, totals.dead), (N, N, 0));
    assert!(totals.balanced(), "{summary}");

    let output = cluster.messages("answers");
    assert_eq!(output.len() as u64, N);
    let mut answers: Vec<Answer> = Vec::new();
    // Each output's key points at the very input it was made from.
    let input_at: BTreeMap<(i32, i64), u64> = placed.iter().copied().zip(1..=N).collect();
    for (at, answer) in answers_by_input(&output) {
        assert_eq!(input_at.get(&at), Some(&answer.id), "key points at {at:?}");
        answers.push(answer);
    }
    answers.sort();
    let expected: Vec<Answer> = (1..=N)
        .map(|id| answer(serde_json::from_slice(&request(id)).unwrap()))
        .collect();
    assert_eq!(answers, expected);
    // In each output partition, the answers to one input partition keep the inputs' order.
    let mut last_offset: BTreeMap<(i32, i32), i64> = BTreeMap::new();
    for (stored, ((partition, offset), _)) in output.iter().zip(answers_by_input(&output)) {
        if let Some(last) = last_offset.insert((stored.partition, partition), offset) {
            assert!(
                last < offset,
                "partition {partition}: offset {offset} after {last}"
            );
        }
    }
    assert_eq!(
        last_offset.len(),
        9,
        "every input partition answered into every output one"
    );
    let ends = cluster.ends("requests");
    assert_eq!(ends.iter().sum::<i64>() as u64, N);
    assert_eq!(
        cluster.committed("answers", "requests"),
        ends.into_iter().map(Some).collect::<Vec<_>>()
    );
}

/// Split across workers, each worker reads its own partitions (partition `p` by worker
/// `p % workers`, assigned directly, not by the group's rebalancing): every message is answered
/// once, a bad payload in each partition is dead-lettered by the worker that owns it, and the
/// group commits every partition's end. With more workers than partitions, the workers dealt
/// none end their share at once and the run still ends.
#[test]
fn on_several_workers_each_reads_its_own_partitions() {
    for (workers, group) in [(2usize, "split-2"), (5, "split-5")] {
        let cluster = Cluster::start();
        cluster.topic("requests", 4);
        cluster.topic("answers", 2);
        const N: u64 = 2_000;
        // Partition p holds the ids with id % 4 == p, and one bad payload first.
        let bad = (0..4).map(|p| (p, Some(b"not json".to_vec())));
        let good = (1..=N).map(|id| ((id % 4) as i32, Some(request(id))));
        cluster.produce("requests", bad.chain(good));
        let args = Urls {
            input: cluster.url(&format!("requests?group={group}")),
            output: cluster.url("answers"),
        };
        let config = RunConfig {
            cluster: tandem::cluster::Cluster::threads(workers),
            dead_letters: DeadLetterTarget::Memory,
            ..RunConfig::default()
        };
        let summary = tandem::job::run_pipeline::<Answers>(&args, &config).unwrap();
        let totals = summary.totals();
        assert_eq!(
            (totals.read, totals.written, totals.dead),
            (N + 4, N, 4),
            "{workers} workers"
        );
        let mut ids: Vec<u64> = answers_by_input(&cluster.messages("answers"))
            .into_iter()
            .map(|(_, answer)| answer.id)
            .collect();
        ids.sort();
        assert_eq!(ids, (1..=N).collect::<Vec<_>>(), "{workers} workers");
        // Each partition's bad payload (offset 0) was read by the worker owning the partition.
        let mut owners: Vec<(i32, usize)> = summary
            .dead_letters
            .iter()
            .map(|d| {
                let (partition, offset) = Kafka::partition_offset(d.position);
                assert_eq!(offset, 0, "{d}");
                (partition, d.worker.expect("a split run names the worker"))
            })
            .collect();
        owners.sort();
        let expected: Vec<(i32, usize)> = (0..4).map(|p| (p, p as usize % workers)).collect();
        assert_eq!(owners, expected, "{workers} workers");
        let ends = cluster.ends("requests");
        assert_eq!(
            cluster.committed(group, "requests"),
            ends.into_iter().map(Some).collect::<Vec<_>>(),
            "{workers} workers"
        );
    }
}

struct CollectArgs {
    source: Mutex<Option<KafkaReader<Request>>>,
    ids: Ids,
}

fn collect_args(source: KafkaReader<Request>, ids: Ids) -> CollectArgs {
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
fn bad_payloads_are_dead_lettered_with_topic_partition_and_offset_and_the_group_moves_on() {
    let cluster = Cluster::start();
    cluster.topic("requests", 1);
    let big = format!("{{\"id\":6,\"text\":\"{}\"}}", "a".repeat(5000));
    let placed = cluster.produce(
        "requests",
        [
            Some(request(1)),
            Some(b"oops{".to_vec()),
            Some(br#"{"id":"three","text":"x"}"#.to_vec()),
            Some(br#"{"id":4}"#.to_vec()),
            None,
            Some(big.into_bytes()),
            Some(request(7)),
        ]
        .map(|value| (0, value)),
    );
    let args = collect_args(
        Kafka::read(cluster.url("requests?group=g"))
            .from_start()
            .until_idle(Duration::from_secs(1))
            .max_bytes(1024),
        Ids::new(false),
    );
    let summary = CollectIds::run_blocking(&args, &RunConfig::default()).unwrap();
    assert_eq!(args.ids.collected.take(), [1, 7]);
    let reasons = [
        (2, "the value is not a valid element: expected value (column 1)"),
        (
            3,
            "the value is not a valid element: invalid type: string \"three\", expected u64 (column 13)",
        ),
        (4, "the value is not a valid element: missing field `text` (column 8)"),
        (5, "the message has no value (a tombstone)"),
        (6, "the value is 5018 bytes, more than the limit of 1024 bytes"),
    ];
    let letters = &summary.dead_letters;
    assert_eq!(letters.len(), reasons.len(), "{letters:#?}");
    for (letter, (nth, reason)) in letters.iter().zip(reasons) {
        let (partition, offset) = placed[nth - 1];
        assert_eq!(letter.position, Kafka::position(partition, offset));
        assert_eq!(
            letter.error,
            format!("topic requests partition {partition} offset {offset}: {reason}")
        );
        assert_eq!(
            letter.source,
            format!("Kafka topic `requests` at {} (group `g`)", cluster.servers)
        );
    }
    assert_eq!(letters[0].input.as_deref(), Some("oops{"));
    assert_eq!(letters[3].input, None, "a tombstone has no value to show");
    assert!(
        letters[4].input.as_ref().unwrap().len() <= 1024,
        "a large value's dead letter keeps only its start"
    );
    let totals = summary.totals();
    assert_eq!((totals.read, totals.written, totals.dead), (7, 2, 5));
    // Dead-lettered messages were handled: the group has moved past all of them.
    assert_eq!(cluster.committed("g", "requests"), [Some(7)]);
}

#[test]
fn a_failed_run_commits_no_offsets_and_the_next_run_reads_the_same_messages() {
    let cluster = Cluster::start();
    cluster.topic("requests", 2);
    cluster.produce(
        "requests",
        (1..=100).map(|id| ((id % 2) as i32, Some(request(id)))),
    );
    let reader = || {
        Kafka::read(cluster.url("requests?group=g"))
            .from_start()
            .until_idle(Duration::from_secs(1))
            // When its last member leaves, the mock cluster's group waits for members to rejoin
            // for a second less than their session timeout (a real broker empties it at once):
            // the next run joins after that.
            .config("session.timeout.ms", "3000")
            .config("heartbeat.interval.ms", "500")
    };

    let failing = collect_args(reader(), Ids::new(true));
    let error = CollectIds::run_blocking(&failing, &RunConfig::default()).unwrap_err();
    assert!(error.to_string().contains("the disk is full"), "{error}");
    assert!(failing.ids.collected.take().is_empty());
    assert_eq!(
        cluster.committed("g", "requests"),
        [None, None],
        "read, not committed"
    );

    // The next member of the group starts where the group's offsets are: at the start.
    let rerun = collect_args(reader(), Ids::new(false));
    let summary = CollectIds::run_blocking(&rerun, &RunConfig::default()).unwrap();
    let mut ids = rerun.ids.collected.take();
    ids.sort_unstable();
    assert_eq!(ids, (1..=100).collect::<Vec<_>>());
    assert_eq!(summary.totals().read, 100);
    assert_eq!(cluster.committed("g", "requests"), [Some(50), Some(50)]);
}

/// Where the child process of the crash test finds its cluster.
/// The `kafka_relay` example, the pipeline the crash test runs, kills and restarts.
fn start_child(cluster: &Cluster) -> std::process::Child {
    Command::new(common::example_binary("kafka_relay"))
        .args([
            "--servers",
            &cluster.servers,
            "--work",
            "150",
            "--checkpoint-interval",
            "50ms",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_pipeline_killed_twice_and_restarted_writes_every_input_with_keys_that_make_it_exactly_once() {
    // The cluster lives in this process; the pipeline runs in a child process, which is
    // SIGKILLed: nothing of it runs after that, no commit, no delivery, no leaving the group.
    let cluster = Cluster::start();
    cluster.topic("requests", 3);
    cluster.topic("answers", 3);
    const N: u64 = 10_000;
    let placed = cluster.produce(
        "requests",
        (1..=N).map(|id| ((id % 3) as i32, Some(request(id)))),
    );

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for round in 0..2u64 {
        // Killed once the group has committed some checkpoints (at a point drawn at random),
        // before it has committed everything.
        let before = cluster.committed_total("live", "requests");
        let at = before + (N / 20) as i64 + ((seed >> (round * 16)) % (N / 4)) as i64;
        let mut child = start_child(&cluster);
        let reached = wait_for(Duration::from_secs(120), || {
            cluster.committed_total("live", "requests") >= at
        });
        child.kill().unwrap();
        child.wait().unwrap();
        let committed = cluster.committed_total("live", "requests");
        assert!(
            reached,
            "round {round}: the group never committed {at} offsets"
        );
        assert!(
            (committed as u64) < N,
            "round {round}: the run had committed everything before it was killed"
        );
        eprintln!(
            "round {round}: killed with {committed} of {N} offsets committed, {} answers written",
            cluster.ends("answers").iter().sum::<i64>()
        );
    }
    let status = start_child(&cluster).wait().unwrap();
    assert!(status.success(), "the last run exited with {status}");

    // Every input was answered; what the killed runs had written after their last checkpoint
    // was written again, under the same key: deduplicated by key, each input is there once.
    let output = cluster.messages("answers");
    let input_at: BTreeMap<(i32, i64), u64> = placed.iter().copied().zip(1..=N).collect();
    let mut by_key: BTreeMap<String, Answer> = BTreeMap::new();
    for (stored, (at, answer)) in output.iter().zip(answers_by_input(&output)) {
        assert_eq!(input_at.get(&at), Some(&answer.id), "key points at {at:?}");
        let key = stored.key.clone().unwrap();
        if let Some(earlier) = by_key.insert(key.clone(), answer.clone()) {
            assert_eq!(earlier, answer, "two different answers under the key {key}");
        }
    }
    let answered: BTreeSet<u64> = by_key.values().map(|a| a.id).collect();
    assert_eq!(
        answered,
        (1..=N).collect::<BTreeSet<_>>(),
        "an input was not answered"
    );
    assert_eq!(by_key.len() as u64, N);
    eprintln!(
        "{} answers written for {N} inputs ({} written again after a crash)",
        output.len(),
        output.len() as u64 - N
    );
    let ends = cluster.ends("requests");
    assert_eq!(
        cluster.committed("live", "requests"),
        ends.into_iter().map(Some).collect::<Vec<_>>()
    );
}

#[test]
fn a_topic_that_does_not_exist_fails_the_run_before_anything_is_read() {
    let cluster = Cluster::start();
    let args = collect_args(
        Kafka::read(cluster.url("nothing-here?group=g")),
        Ids::new(false),
    );
    let error = CollectIds::run_blocking(&args, &RunConfig::default()).unwrap_err();
    assert!(matches!(error, tandem::Error::Config(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "cannot read Kafka topic `nothing-here` at {} (group `g`): the topic does not exist (a source does not create topics)",
            cluster.servers
        )
    );
}

#[test]
fn mistakes_in_the_url_or_the_properties_fail_the_run_before_anything_is_read() {
    let args = collect_args(Kafka::read("kafka://127.0.0.1:1/requests"), Ids::new(false));
    let error = CollectIds::run_blocking(&args, &RunConfig::default()).unwrap_err();
    assert!(matches!(error, tandem::Error::Config(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "Kafka URL `kafka://127.0.0.1:1/requests`: it names no consumer group; write `kafka://HOST:PORT/TOPIC?group=GROUP` (the members of one group share the topic's partitions, and the group keeps their offsets)"
    );
    for (reader, expected) in [
        (
            Kafka::read("kafka://127.0.0.1:1/requests?group=g").config("enable.auto.commit", "true"),
            "`.config(\"enable.auto.commit\", ..)`: the source sets `enable.auto.commit` itself (offsets are committed at checkpoints, once the outputs are durable)",
        ),
        (
            Kafka::read("kafka://127.0.0.1:1/requests?group=g").config("no.such.property", "1"),
            "`.config(\"no.such.property\", \"1\")`: No such configuration property",
        ),
    ] {
        let args = collect_args(reader, Ids::new(false));
        let error = CollectIds::run_blocking(&args, &RunConfig::default()).unwrap_err();
        assert!(matches!(error, tandem::Error::Config(_)), "{error:?}");
        assert!(error.to_string().contains(expected), "{error}");
    }
}

struct RelayArgs {
    source: Mutex<Option<KafkaReader<Request>>>,
    sink: Mutex<Option<KafkaWriter>>,
}

pipeline! {
    Relay(args: RelayArgs) {
        read(args.source.lock().unwrap().take().unwrap())
            -> map(answer)
            -> write(args.sink.lock().unwrap().take().unwrap());
    }
}

#[test]
fn a_cluster_that_does_not_come_back_fails_the_run_after_retry_for() {
    let cluster = Cluster::start();
    cluster.topic("requests", 1);
    cluster.topic("answers", 1);
    cluster.produce("requests", (1..=10).map(|id| (0, Some(request(id)))));
    let stop = StopSignal::new();
    let config = RunConfig {
        stop: stop.clone(),
        ..RunConfig::default()
    };
    let args = RelayArgs {
        source: Mutex::new(Some(
            Kafka::read(cluster.url("requests?group=g"))
                .from_start()
                .retry_for(Duration::from_secs(2)),
        )),
        sink: Mutex::new(Some(Kafka::write(cluster.url("answers")))),
    };
    let error = std::thread::scope(|scope| {
        let run = scope.spawn(|| Relay::run_blocking(&args, &config));
        // Unbounded: it reads the ten messages, answers and commits them at a checkpoint, then
        // waits for more; then the broker goes.
        let answered = wait_for(Duration::from_secs(60), || {
            cluster.committed("g", "requests") == [Some(10)] || run.is_finished()
        });
        cluster.mock.broker_down(1).unwrap();
        if !answered {
            stop.stop(0);
        }
        let finished = wait_for(Duration::from_secs(60), || run.is_finished());
        if !finished {
            stop.stop(0);
        }
        assert!(
            answered && finished,
            "answered {answered}, finished {finished}"
        );
        run.join().unwrap()
    })
    .unwrap_err()
    .to_string();
    cluster.mock.broker_up(1).unwrap();
    for expected in [
        format!(
            "reading Kafka topic `requests` at {} (group `g`) failed after record 10: the Kafka cluster at {} did not answer for",
            cluster.servers, cluster.servers
        ),
        "`retry_for` is 2s".into(),
    ] {
        assert!(error.contains(&expected), "{error}\ndoes not contain\n{expected}");
    }
    assert_eq!(cluster.ends("answers"), [10]);
}
