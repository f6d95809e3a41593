//! Split runs: the `ab_split` binary on 2 and 4 processes (on 127.0.0.1, free ports) and on 2
//! worker threads gives the single run's outputs and dead letters (sorted: the order across
//! parts is not defined) and the job's totals; a process that fails or is killed stops the
//! others, which name it and commit nothing. Also in-process splits of memory and CSV sources.
#![cfg(unix)]

mod common;
#[path = "common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tandem::cluster::Cluster;
use tandem::prelude::*;

fn ab_split(dir: &Path, requests: &Path, extra: &[String]) -> Command {
    let mut command = Command::new(common::example_binary("ab_split"));
    command
        .arg("--requests")
        .arg(requests)
        .args(["--served", "served.jsonl", "--dead-letters", "bad.jsonl"])
        .args(extra)
        .current_dir(dir)
        .env_remove("TANDEM_DEAD_LETTERS")
        .env_remove("TANDEM_WORKERS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Starts `processes` processes of ab_split in `dir` (a hostfile of free ports), each with
/// `extra` options.
fn start(dir: &Path, requests: &Path, processes: usize, extra: &[&str]) -> common::Children {
    let hostfile = common::hostfile(dir, processes);
    let children = (0..processes)
        .map(|i| {
            let mut options: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            options.extend([
                "--processes".into(),
                processes.to_string(),
                "--process".into(),
                i.to_string(),
                "--hostfile".into(),
                hostfile.display().to_string(),
            ]);
            ab_split(dir, requests, &options).spawn().unwrap()
        })
        .collect();
    common::Children(children)
}

/// The lines of every file in `dir` named `stem` or `stem-NNNNN-of-NNNNN` + `ext`, sorted.
fn sorted_lines(dir: &Path, stem: &str, ext: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(stem) else {
            continue;
        };
        if rest == ext || (rest.starts_with('-') && rest.ends_with(ext) && rest.contains("-of-")) {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap();
            lines.extend(text.lines().map(str::to_owned));
        }
    }
    lines.sort();
    lines
}

fn totals_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("= written"))
        .unwrap_or_else(|| panic!("no totals line in:\n{stderr}"))
        .trim()
        .to_owned()
}

/// What a run produced: the served lines and the dead letters, sorted, and the totals line.
struct Result {
    served: Vec<String>,
    bad: Vec<String>,
    totals: String,
    /// Workers in all processes.
    workers: usize,
}

fn single(requests: &Path, extra: &[&str]) -> Result {
    let dir = tempfile::tempdir().unwrap();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let output = ab_split(dir.path(), requests, &extra).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    Result {
        served: sorted_lines(dir.path(), "served", ".jsonl"),
        bad: sorted_lines(dir.path(), "bad", ".jsonl"),
        totals: totals_line(&stderr),
        workers: 1,
    }
}

fn split(requests: &Path, processes: usize, extra: &[&str]) -> Result {
    let dir = tempfile::tempdir().unwrap();
    let mut children = start(dir.path(), requests, processes, extra);
    let outputs: Vec<Output> = children
        .0
        .drain(..)
        .map(|c| common::wait(c, Duration::from_secs(120)))
        .collect();
    for (i, output) in outputs.iter().enumerate() {
        assert!(
            output.status.success(),
            "process {i}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // timely's own connection messages would land on stdout, where outputs may go.
        assert!(output.stdout.is_empty(), "process {i} printed on stdout");
    }
    let stderr = String::from_utf8_lossy(&outputs[0].stderr);
    // One part per worker of every process.
    let workers = processes
        * extra
            .iter()
            .position(|o| *o == "--workers")
            .map_or(1, |at| extra[at + 1].parse().unwrap());
    for worker in 0..workers {
        let part = dir
            .path()
            .join(format!("served-{worker:05}-of-{workers:05}.jsonl"));
        assert!(part.exists(), "{} is missing", part.display());
    }
    Result {
        served: sorted_lines(dir.path(), "served", ".jsonl"),
        bad: sorted_lines(dir.path(), "bad", ".jsonl"),
        totals: totals_line(&stderr),
        workers,
    }
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/requests.jsonl")
}

#[test]
fn ab_split_on_several_processes_gives_the_single_runs_outputs() {
    let one = single(&sample(), &[]);
    assert_eq!(one.served.len(), 1883);
    assert_eq!(one.bad.len(), 3);
    for (processes, extra) in [
        (1, &["--workers", "2"][..]),
        (2, &[][..]),
        (4, &[][..]),
        (2, &["--workers", "2"][..]),
    ] {
        let run = split(&sample(), processes, extra);
        let what = format!("{processes} processes {extra:?}");
        assert_eq!(run.served, one.served, "{what}: served");
        // Dead letters keep their line numbers in the whole file, and say which worker and
        // process read them.
        let mut bad: Vec<String> = run
            .bad
            .iter()
            .map(|line| {
                let mut letter: serde_json::Value = serde_json::from_str(line).unwrap();
                let fields = letter.as_object_mut().unwrap();
                let worker = fields.remove("worker").and_then(|w| w.as_u64());
                let process = fields.remove("process").and_then(|p| p.as_u64());
                let (worker, process) = (worker.unwrap(), process.unwrap());
                let workers = run.workers as u64 / processes as u64;
                assert_eq!(process, worker / workers, "{what}: {line}");
                letter.to_string()
            })
            .collect();
        bad.sort();
        let mut expected: Vec<String> = one
            .bad
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap()
                    .to_string()
            })
            .collect();
        expected.sort();
        assert_eq!(bad, expected, "{what}: dead letters");
        assert_eq!(run.totals, one.totals, "{what}: the job's totals");
    }
}

/// A requests file of `n` good lines and one bad line at `bad_at`.
fn requests(dir: &Path, n: u64, bad_at: u64) -> PathBuf {
    let path = dir.join("requests.jsonl");
    let mut text = String::new();
    for i in 1..=n {
        if i == bad_at {
            text.push_str("{\"user_id\": oops}\n");
        } else {
            text.push_str(&format!(
                "{{\"user_id\":{},\"ad_id\":{},\"score\":{:.3},\"time\":{i}}}\n",
                i * 7919 % 1000,
                i % 50,
                (i % 97) as f64 / 97.0
            ));
        }
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// An older run's part of process 0's output in `dir`: a failed run must leave it as it is.
fn older_part(dir: &Path) -> PathBuf {
    let part = dir.join("served-00000-of-00002.jsonl");
    std::fs::write(&part, "an older run's part\n").unwrap();
    part
}

fn assert_untouched(part: &Path) {
    assert_eq!(
        std::fs::read_to_string(part).unwrap(),
        "an older run's part\n"
    );
}

#[test]
fn a_failing_process_stops_the_others_and_nothing_is_committed() {
    let data = tempfile::tempdir().unwrap();
    // The bad line is in the second process's half: with --fail-fast, that process fails.
    let input = requests(data.path(), 4000, 3900);
    let dir = tempfile::tempdir().unwrap();
    let before = older_part(dir.path());
    let mut children = start(dir.path(), &input, 2, &["--fail-fast"]);
    let outputs: Vec<Output> = children
        .0
        .drain(..)
        .map(|c| common::wait(c, Duration::from_secs(60)))
        .collect();
    let stderr: Vec<String> = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert!(!outputs[1].status.success());
    assert!(stderr[1].contains("3900"), "{}", stderr[1]);
    assert!(!outputs[0].status.success(), "{}", stderr[0]);
    assert!(
        stderr[0].contains("worker 1 (process 1) failed"),
        "process 0 must name the failed one: {}",
        stderr[0]
    );
    assert_untouched(&before);
    assert!(!dir.path().join("served-00001-of-00002.jsonl").exists());
}

#[test]
fn a_killed_process_stops_the_others_within_seconds() {
    let data = tempfile::tempdir().unwrap();
    let input = requests(data.path(), 600_000, 0);
    let dir = tempfile::tempdir().unwrap();
    let before = older_part(dir.path());
    let children = start(dir.path(), &input, 2, &["-q"]);
    // Mid-run: once process 1 has written part of its output.
    common::kill_the_second_when(children, || {
        std::fs::read_dir(dir.path()).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().ends_with(".partial")
                && e.metadata().is_ok_and(|m| m.len() > 0)
        })
    });
    assert_untouched(&before);
}

/// Starts `processes` processes of example `binary` on `hostfile`, reading `--events events`,
/// writing `output` (its option and stream), with `extra` options; each with its own dead-letter
/// file.
fn start_live(
    binary: &str,
    events: String,
    output: (&str, String),
    extra: &[&str],
    hostfile: &Path,
    processes: usize,
) -> common::Children {
    let children = (0..processes)
        .map(|i| {
            Command::new(common::example_binary(binary))
                .arg("--events")
                .arg(&events)
                .arg(output.0)
                .arg(&output.1)
                .args(extra)
                .args(["-q", "--dead-letters"])
                .arg(hostfile.with_file_name(format!("bad-{i}.jsonl")))
                .args([
                    "--processes",
                    &processes.to_string(),
                    "--process",
                    &i.to_string(),
                ])
                .arg("--hostfile")
                .arg(hostfile)
                .env_remove("TANDEM_WORKERS")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    common::Children(children)
}

/// Adds an entry to the `events` stream for each id, its `data` field `event(id)`.
fn add_events(
    conn: &mut redis::Connection,
    ids: impl Iterator<Item = u64>,
    event: impl Fn(u64) -> serde_json::Value,
) {
    for chunk in ids.collect::<Vec<_>>().chunks(500) {
        let mut pipe = redis::pipe();
        for &id in chunk {
            pipe.cmd("XADD")
                .arg("events")
                .arg("*")
                .arg("data")
                .arg(event(id).to_string())
                .ignore();
        }
        pipe.query::<()>(conn).unwrap();
    }
}

/// Waits for every process of `run` (2 minutes at most) and checks that each succeeded.
fn wait_for_success(mut run: common::Children, what: &str) {
    for (i, child) in run.0.drain(..).enumerate() {
        let output = common::wait(child, Duration::from_secs(120));
        assert!(
            output.status.success(),
            "{what}, process {i}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn xlen(conn: &mut redis::Connection, stream: &str) -> u64 {
    redis::cmd("XLEN").arg(stream).query(conn).unwrap()
}

/// A process killed mid-run on live traffic stops the other; the rerun of both serves every
/// request exactly once and leaves nothing pending.
#[test]
fn after_a_killed_process_a_rerun_serves_every_request_once() {
    const N: u64 = 3000;
    let server = redis_server::RedisServer::start();
    let mut conn = server.client();
    add_events(
        &mut conn,
        1..=N,
        |id| serde_json::json!({ "id": id, "features": vec![0.5f32; 16] }),
    );
    let dir = tempfile::tempdir().unwrap();
    let hostfile = common::hostfile(dir.path(), 2);

    // `backpressure_live`: Redis events -> a slow model -> Redis scores, exactly once.
    let start = || {
        start_live(
            "backpressure_live",
            server.url("events?group=scorers&consumer=scorer"),
            ("--scores", server.url("scores")),
            &[
                "--model-ms",
                "10",
                "--until-idle",
                "1000",
                "--checkpoint-interval",
                "50ms",
            ],
            &hostfile,
            2,
        )
    };
    let first = start();
    common::kill_the_second_when(first, || xlen(&mut conn, "scores") >= 300);
    assert!(
        xlen(&mut conn, "scores") < N,
        "the first run was not stopped mid-way"
    );

    let second = start();
    wait_for_success(second, "rerun");
    let mut ids: Vec<u64> = redis_server::stream_data::<serde_json::Value>(&mut conn, "scores")
        .iter()
        .map(|score| score["id"].as_u64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        (1..=N).collect::<Vec<_>>(),
        "every request scored exactly once"
    );
    // XPENDING's summary: [count, first id, last id, per consumer].
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg("events")
        .arg("scorers")
        .query(&mut conn)
        .unwrap();
    assert_eq!(pending[0], redis::Value::Int(0), "entries left pending");
}

/// (entries the group has handed out, entries acknowledged) of `stream`'s first group.
fn handed_out_and_acknowledged(conn: &mut redis::Connection, stream: &str) -> (u64, u64) {
    let groups: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query(conn)
        .unwrap();
    let count = |field: &str| match groups.first().and_then(|g| g.get(field)) {
        Some(redis::Value::Int(n)) => *n as u64,
        _ => 0,
    };
    let out = count("entries-read");
    (out, out - count("pending"))
}

/// Windows split over two processes, with job-wide checkpoints: entries are acknowledged while
/// the run goes on, once the windows holding them have been written by the processes owning
/// their keys. One process killed mid-run (after some entries were acknowledged) stops the
/// other; the rerun reads again whatever was not acknowledged, so every window of every key is
/// written with its full count (a window written before the kill may be written again, partly,
/// by the rerun: at least once, never less), and nothing is left pending.
#[test]
fn windows_over_processes_lose_nothing_when_one_is_killed() {
    // 4,000 events a millisecond apart, 5 keys: 40 windows of 100 ms, 20 events per key each.
    const N: u64 = 4000;
    let server = redis_server::RedisServer::start();
    let mut conn = server.client();
    add_events(
        &mut conn,
        0..N,
        |id| serde_json::json!({ "id": id, "key": id % 5, "time": id }),
    );
    let dir = tempfile::tempdir().unwrap();
    let hostfile = common::hostfile(dir.path(), 2);

    // `live_counts`: Redis events -> windows of 100 ms -> counts per key -> Redis, each event
    // taking half a millisecond.
    let start = || {
        start_live(
            "live_counts",
            server.url("events?group=counters&consumer=counter"),
            ("--counts", server.url("counts")),
            &[
                "--window-ms",
                "100",
                "--work-us",
                "500",
                "--until-idle",
                "1000",
                "--checkpoint-interval",
                "20ms",
                "--batch-size",
                "50",
            ],
            &hostfile,
            2,
        )
    };
    let first = start();
    common::kill_the_second_when(first, || {
        handed_out_and_acknowledged(&mut conn, "events").1 >= 400
    });
    let (_, acknowledged) = handed_out_and_acknowledged(&mut conn, "events");
    assert!(acknowledged < N, "the first run was not stopped mid-way");

    let second = start();
    wait_for_success(second, "rerun");
    let mut most: BTreeMap<(i64, u64), u64> = BTreeMap::new();
    for count in redis_server::stream_data::<serde_json::Value>(&mut conn, "counts") {
        let at = (
            count["window"]["start"].as_i64().unwrap(),
            count["key"].as_u64().unwrap(),
        );
        let value = count["value"].as_u64().unwrap();
        let slot = most.entry(at).or_default();
        *slot = (*slot).max(value);
    }
    let expected: BTreeMap<(i64, u64), u64> = (0..40)
        .flat_map(|w| (0..5).map(move |k| ((w * 100, k), 20)))
        .collect();
    assert_eq!(
        most, expected,
        "every window of every key with its full count"
    );
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg("events")
        .arg("counters")
        .query(&mut conn)
        .unwrap();
    assert_eq!(pending[0], redis::Value::Int(0), "entries left pending");
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, PartialOrd)]
struct Row {
    id: u64,
    score: f64,
}

pipeline! {
    /// Doubles the scores of a CSV file.
    Double(args: (PathBuf, PathBuf)) {
        read(Csv::<Row>::open(&args.0))
            -> map(|r: Row| Row { id: r.id, score: r.score * 2.0 })
            -> write(Csv::create(&args.1));
    }
}

#[test]
fn csv_parts_keep_the_header_and_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("rows.csv");
    let mut text = String::from("id,score\n");
    for i in 1..=999u64 {
        if i == 700 {
            text.push_str("700,not-a-number\n");
        } else {
            text.push_str(&format!("{i},{}\n", i as f64 / 4.0));
        }
    }
    std::fs::write(&input, text).unwrap();
    let output = dir.path().join("doubled.csv");
    let config = RunConfig {
        cluster: Cluster::threads(3),
        ..RunConfig::default()
    };
    let summary =
        tandem::job::run_pipeline::<Double>(&(input.clone(), output.clone()), &config).unwrap();
    assert_eq!(summary.totals().read, 999);
    assert_eq!(summary.totals().written, 998);
    // The bad row is on line 701 of the file (after the header), whichever worker read it.
    assert_eq!(summary.dead_letters.len(), 1);
    assert_eq!(summary.dead_letters[0].position, 701);
    let mut ids = Vec::new();
    for worker in 0..3 {
        let part = dir.path().join(format!("doubled-{worker:05}-of-00003.csv"));
        let text = std::fs::read_to_string(&part).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("id,score"), "{}", part.display());
        for line in lines {
            let (id, score) = line.split_once(',').unwrap();
            let id: u64 = id.parse().unwrap();
            assert_eq!(score.parse::<f64>().unwrap(), id as f64 / 2.0);
            ids.push(id);
        }
    }
    ids.sort();
    let expected: Vec<u64> = (1..=999).filter(|&i| i != 700).collect();
    assert_eq!(ids, expected);
}

/// Records the position each element came from (a sink keyed by positions, as a stream sink
/// that must not write an element twice is).
#[derive(Clone)]
struct Positions(Collector<(u64, u64)>);

impl tandem::io::Sink<Row> for Positions {
    fn describe(&self) -> String {
        "positions".into()
    }
    fn write(&mut self, _: Row) -> std::result::Result<(), String> {
        Err("written with its position only".into())
    }
    fn write_at(&mut self, row: Row, pos: tandem::io::Pos) -> std::result::Result<(), String> {
        self.0.write((row.id, pos.index))
    }
    fn finish(&mut self) -> tandem::Result<Option<Box<dyn tandem::io::Commit>>> {
        tandem::io::Sink::<(u64, u64)>::finish(&mut self.0)
    }
}

pipeline! {
    /// Each row of a JSON lines file with the position it was read at.
    WherePositions(args: (PathBuf, Positions)) {
        read(JsonLines::<Row>::open(&args.0)) -> write(args.1.clone());
    }
}

/// A later worker numbers its part's lines from the part's start and counts the lines before
/// the part only when a position is told (a dead letter, a sink keyed by positions): the file's
/// line numbers are what every one of them sees, on any number of workers.
#[test]
fn positions_in_a_split_file_are_the_files_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("rows.jsonl");
    let mut text = String::new();
    for line in 1..=2000u64 {
        match line {
            // A blank line (no record) and a bad one, so that lines and records differ.
            300 => text.push('\n'),
            1500 => text.push_str("{\"id\": 1500, \"score\": oops}\n"),
            _ => text.push_str(&format!("{{\"id\": {line}, \"score\": 0.5}}\n")),
        }
    }
    std::fs::write(&input, text).unwrap();
    for workers in [1, 2, 3, 7] {
        let positions = Positions(Collector::new());
        let config = RunConfig {
            cluster: Cluster::threads(workers),
            ..RunConfig::default()
        };
        let summary = tandem::job::run_pipeline::<WherePositions>(
            &(input.clone(), positions.clone()),
            &config,
        )
        .unwrap();
        assert_eq!(summary.dead_letters.len(), 1, "{workers} workers");
        assert_eq!(summary.dead_letters[0].position, 1500, "{workers} workers");
        let mut seen = positions.0.take();
        seen.sort();
        // Every row's id is its line number.
        assert_eq!(seen.len(), 1998, "{workers} workers");
        assert!(
            seen.iter().all(|&(id, position)| id == position),
            "{workers} workers: {:?}",
            seen.iter().find(|(id, position)| id != position)
        );
    }
}

pipeline! {
    /// Squares numbers into a collector.
    Squares(args: Collector<(u64, u64)>) {
        read(Memory::new(1..=10_000u64))
            -> map(|n: u64| (n, n * n))
            -> write(args.clone());
    }
}

#[test]
fn memory_sources_are_dealt_to_workers_once_each() {
    let collector = Collector::new();
    let config = RunConfig {
        cluster: Cluster::threads(3),
        ..RunConfig::default()
    };
    let summary = tandem::job::run_pipeline::<Squares>(&collector, &config).unwrap();
    assert_eq!(summary.totals().read, 10_000);
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    for (n, square) in collector.take() {
        assert_eq!(square, n * n);
        *seen.entry(n).or_default() += 1;
    }
    assert_eq!(seen.len(), 10_000);
    assert!(seen.values().all(|&count| count == 1));
}

/// Event times out of order by up to 2 s (within the allowed lateness), over 200 s.
fn event_time(n: &u64) -> u64 {
    n * 10 + (n * 7919) % 2000
}

/// Counts and sums per key and window.
type Results = (Collector<Combined<u64, u64>>, Collector<Combined<u64, f64>>);

pipeline! {
    /// Counts and sums per key in windows: keyed exchange between the workers.
    Windowed(args: Results) {
        events = read(Memory::new(0..20_000u64))
            -> window(Fixed::seconds(10).allowed_lateness(Duration::from_secs(3)), event_time);
        events
            -> combine_per_key(|n: &u64| n % 101, Count)
            -> write(args.0.clone());
        events
            -> combine_per_key(|n: &u64| n % 7, Sum::of(|n: &u64| *n as f64))
            -> write(args.1.clone());
    }
}

#[test]
fn windows_on_several_workers_give_the_single_runs_results() {
    let run = |workers: usize| {
        let args: Results = (Collector::new(), Collector::new());
        let config = RunConfig {
            cluster: Cluster::threads(workers),
            ..RunConfig::default()
        };
        let summary = tandem::job::run_pipeline::<Windowed>(&args, &config).unwrap();
        assert!(summary.totals().balanced());
        let mut counts = args.0.take();
        counts.sort_by_key(|c| (c.window, c.key));
        let mut sums = args.1.take();
        sums.sort_by_key(|c| (c.window, c.key));
        (counts, sums, summary)
    };
    let (counts, sums, single) = run(1);
    assert!(counts.len() > 20 * 100, "{}", counts.len());
    assert_eq!(counts.iter().map(|c| c.value).sum::<u64>(), 20_000);
    assert_eq!(single.exchanged.records, 0);
    for workers in [2, 3, 4] {
        let (c, s, summary) = run(workers);
        assert_eq!(c, counts, "{workers} workers");
        // Integer sums: exact in f64 whatever the order of the additions.
        assert_eq!(s, sums, "{workers} workers");
        assert_eq!(summary.totals(), single.totals(), "{workers} workers");
        // Pre-aggregated: at most one accumulator per window, key and worker.
        assert!(summary.exchanged.records > 0);
        assert!(
            summary.exchanged.records <= (workers * 21 * (101 + 7)) as u64,
            "{workers} workers: {:?}",
            summary.exchanged
        );
    }
}

/// Progress of the two workers of `Uneven`: the largest element each has read.
#[derive(Default)]
struct Pace {
    out: Collector<Combined<u64, u64>>,
    /// Largest odd element read (worker 1's), plus one (0: none yet).
    odd: std::sync::atomic::AtomicU64,
    /// Largest lead of worker 0 (even elements) over worker 1, in elements.
    lead: std::sync::atomic::AtomicU64,
}

impl Pace {
    fn read(&self, n: u64) {
        use std::sync::atomic::Ordering::SeqCst;
        if n % 2 == 1 {
            self.odd.fetch_max(n + 1, SeqCst);
        } else {
            let lead = n.saturating_sub(self.odd.load(SeqCst));
            self.lead.fetch_max(lead, SeqCst);
        }
    }
}

pipeline! {
    /// A window per element (element `n` at `n` seconds); worker 1 (the odd elements) is slowed
    /// by its map.
    Uneven(args: Pace) {
        read(Memory::new(0..4_000u64))
            -> inspect(|n: &u64| args.read(*n))
            -> map(|n: u64| {
                if n % 2 == 1 {
                    std::thread::sleep(Duration::from_micros(200));
                }
                n
            })
            -> window(Fixed::seconds(1), |n: &u64| *n * 1000)
            -> combine_per_key(|n: &u64| n % 2, Count)
            -> write(args.out.clone());
    }
}

/// timely has no backpressure of its own: a worker's `combine_per_key` that has shipped more
/// than `MAX_WINDOWS_AHEAD` windows beyond the job's watermark waits for the slowest worker, so
/// the fast worker's reader keeps pace with the slow one instead of reading everything at once
/// (it pauses between chunks: at most one chunk, `batch_size` elements, past the limit).
#[test]
fn a_slow_worker_slows_the_readers_of_the_others() {
    let args = Pace::default();
    let batch = 64;
    let config = RunConfig {
        cluster: Cluster::threads(2),
        batch_size: batch,
        ..RunConfig::default()
    };
    let summary = tandem::job::run_pipeline::<Uneven>(&args, &config).unwrap();
    assert!(summary.totals().balanced(), "{summary}");
    let out = args.out.take();
    assert_eq!(out.len(), 4_000);
    assert!(out
        .iter()
        .all(|c| c.value == 1 && c.key == (c.window.start as u64 / 1000) % 2));
    // Unthrottled, worker 0 reads its 2,000 elements while worker 1 is at its first few dozen
    // (a lead of ~4,000); throttled, it stays within the windows allowed ahead and one chunk
    // (two elements per window or element of its own, one of each worker), with some slack for
    // the exchange's latency.
    let ahead = tandem::ops::MAX_WINDOWS_AHEAD as u64;
    let lead = args.lead.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        lead <= 2 * (ahead + batch as u64) + 200,
        "worker 0 ran {lead} elements ahead of worker 1"
    );
}

pipeline! {
    /// Windows per key, where one element (read by worker 1) fails.
    FailingWindows(args: Collector<Combined<u64, u64>>) {
        read(Memory::new(0..200_000u64))
            -> try_map(|n: u64| if n == 150_001 { Err(format!("element {n} is bad")) } else { Ok(n) })
            -> window(Fixed::seconds(1), |n: &u64| *n)
            -> combine_per_key(|n: &u64| n % 10, Count)
            -> write(args.clone());
    }
}

/// A worker that fails while the windows are being exchanged (fail-fast on a bad element):
/// every worker stops with the error, none waits forever for the failed one's windows, and
/// nothing is emitted past the failure's commit decision.
#[test]
fn a_failing_worker_stops_a_windowed_split_run_without_hanging() {
    for workers in [2, 3] {
        let out = Collector::new();
        let config = RunConfig {
            cluster: Cluster::threads(workers),
            fail_fast: true,
            dead_letters: DeadLetterTarget::Memory,
            ..RunConfig::default()
        };
        let started = std::time::Instant::now();
        let error = tandem::job::run_pipeline::<FailingWindows>(&out, &config)
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{workers} workers: took {:?}",
            started.elapsed()
        );
        assert!(
            error.contains("element 150001 is bad"),
            "{workers} workers: {error}"
        );
    }
}

/// A sink wrapping a file sink that forgets to pass `Sink::split` on: on several workers each
/// would write the whole file, and the last rename would silently win.
struct Forgetful(tandem::io::JsonLinesWriter);

impl tandem::io::Sink<u64> for Forgetful {
    fn describe(&self) -> String {
        tandem::io::Sink::<u64>::describe(&self.0)
    }
    fn open(&mut self) -> tandem::Result<()> {
        tandem::io::Sink::<u64>::open(&mut self.0)
    }
    fn write(&mut self, item: u64) -> std::result::Result<(), String> {
        tandem::io::Sink::<u64>::write(&mut self.0, item)
    }
    fn finish(&mut self) -> tandem::Result<Option<Box<dyn tandem::io::Commit>>> {
        tandem::io::Sink::<u64>::finish(&mut self.0)
    }
}

pipeline! {
    /// Numbers into a wrapped file sink.
    Wrapped(args: PathBuf) {
        read(Memory::new(0..1_000u64))
            -> write(Forgetful(JsonLines::create(args)));
    }
}

/// Two workers of one process opening the same output file are refused with an error that says
/// why, instead of one worker's part silently replacing the other's.
#[test]
fn two_workers_writing_the_same_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("numbers.jsonl");
    let one = tandem::job::run_pipeline::<Wrapped>(&path, &RunConfig::default()).unwrap();
    assert_eq!(one.totals().written, 1_000);
    std::fs::remove_file(&path).unwrap();
    let config = RunConfig {
        cluster: Cluster::threads(2),
        ..RunConfig::default()
    };
    let error = tandem::job::run_pipeline::<Wrapped>(&path, &config)
        .unwrap_err()
        .to_string();
    assert!(error.contains("Sink::split"), "{error}");
    assert!(error.contains("numbers.jsonl"), "{error}");
    assert!(!path.exists());
}

/// A model's inputs and results on several workers.
type Modelled<H> = (H, Collector<PredictionResult<i64, i64>>);

pipeline! {
    /// A model behind a slow step: each worker's inputs reach the model one at a time, as live
    /// traffic does, so its batches fill from every worker's partial batches. Negative numbers
    /// fail to prepare.
    Trickle(args: Modelled<common::Scale>) {
        read(Memory::new(-30i64..570))
            -> map(|n: i64| { std::thread::sleep(Duration::from_millis(1)); n })
            -> run_inference(args.0.clone())
            -> write(args.1.clone());
    }
}

/// On several workers of one process, a `run_inference` stage loads its model once (not once
/// per worker) and cuts its batches from every worker's inputs; each worker's results, dead
/// letters and counts stay its own, and the job's add up.
#[test]
fn a_model_is_loaded_once_per_process_and_batches_across_its_workers() {
    use std::sync::atomic::Ordering::SeqCst;
    let mut model = common::Scale::new(64);
    model.fail_on = Some(301);
    let args: Modelled<common::Scale> = (model.clone(), Collector::new());
    let config = RunConfig {
        cluster: Cluster::threads(3),
        dead_letters: DeadLetterTarget::Memory,
        ..RunConfig::default()
    };
    let summary = tandem::job::run_pipeline::<Trickle>(&args, &config).unwrap();
    assert_eq!(model.loads.load(SeqCst), 1, "one load for the 3 workers");
    assert!(summary.totals().balanced(), "{summary}");
    assert_eq!(summary.totals().read, 600);
    let batches = model.batches.lock().unwrap().clone();
    let failed = batches.iter().find(|b| b.contains(&301)).unwrap().clone();
    let mut served: Vec<i64> = args
        .1
        .take()
        .into_iter()
        .map(|r| {
            assert_eq!(r.inference, 3 * r.example);
            r.example
        })
        .collect();
    served.sort();
    let expected: Vec<i64> = (0..570).filter(|n| !failed.contains(n)).collect();
    assert_eq!(
        served, expected,
        "every input served once but the failed batch's"
    );
    assert_eq!(summary.dead_letters.len(), 30 + failed.len());
    // Worker w reads the numbers n with (n + 30) % 3 == w: some batch holds several workers'.
    let workers = |batch: &Vec<i64>| {
        let mut seen: Vec<i64> = batch.iter().map(|n| (n + 30) % 3).collect();
        seen.sort();
        seen.dedup();
        seen.len()
    };
    assert!(
        batches.iter().any(|b| workers(b) > 1),
        "no batch holds more than one worker's inputs: {:?}",
        batches.iter().map(Vec::len).collect::<Vec<_>>()
    );
    // One metrics cell for the stage, whichever worker loaded the model.
    let inference = &summary.inference;
    assert_eq!(inference.len(), 1, "{inference:?}");
    assert_eq!(inference[0].inferences as usize, 570 - failed.len());
}

pipeline! {
    /// An endless input through a model that the test makes fail for good.
    Endless(args: Modelled<tandem::inference::Tuned<common::Scale>>) {
        read(Memory::new(0i64..))
            -> run_inference(args.0.clone())
            -> write(args.1.clone());
    }
}

/// The worker running a shared model's stage fails (its model has no replica left): every
/// other worker of the process stops too, with an error naming the cause, though its input
/// never ends, and nothing is committed.
#[test]
fn a_shared_model_that_fails_stops_every_worker() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("scale.txt");
    std::fs::write(&weights, "3").unwrap();
    let mut model = common::Scale::new(16);
    model.weights = Some(weights.clone());
    // The batch holding 40 hangs past the timeout; its replacement cannot load (the weights
    // are gone by then): no replica is left.
    model.slow = Some((40, Duration::from_secs(3)));
    let loads = model.loads.clone();
    let remover = std::thread::spawn(move || {
        assert!(common::wait_for(Duration::from_secs(20), || loads
            .load(SeqCst)
            >= 1));
        std::fs::remove_file(&weights).unwrap();
    });
    let args = (model.timeout(Duration::from_millis(100)), Collector::new());
    let config = RunConfig {
        cluster: Cluster::threads(2),
        dead_letters: DeadLetterTarget::Memory,
        ..RunConfig::default()
    };
    let started = std::time::Instant::now();
    let error = tandem::job::run_pipeline::<Endless>(&args, &config)
        .unwrap_err()
        .to_string();
    remover.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(error.contains("no replica left"), "{error}");
}

/// Holds elements until opened (or for a minute at most, so a failed test cannot hold its run).
#[derive(Clone, Default)]
struct Gate(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Gate {
    fn pass<T>(&self, item: T) -> T {
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while !self.0.load(std::sync::atomic::Ordering::SeqCst) && std::time::Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        item
    }
}

pipeline! {
    /// A model whose results wait at a gate, so the test can look at the metrics mid-run.
    Gated(args: (common::Scale, Gate, Collector<PredictionResult<i64, i64>>)) {
        read(Memory::new(0i64..100))
            -> run_inference(args.0.clone())
            -> map(|r: PredictionResult<i64, i64>| args.1.pass(r))
            -> write(args.2.clone());
    }
}

/// `GET /metrics` at `addr`: the body, or why not.
fn scrape(addr: std::net::SocketAddr) -> std::result::Result<String, String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}

/// The value of the first series of `text` whose line starts with `prefix`.
fn series(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A split run's metrics endpoint (one per process, served by its first worker) shows the whole
/// process: every worker's reads added up, each worker's queues labelled with the worker, and
/// the shared model stage once.
#[test]
fn the_metrics_endpoint_shows_every_worker_of_the_process() {
    let addr: std::net::SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let gate = Gate::default();
    let args = (common::Scale::new(8), gate.clone(), Collector::new());
    let config = RunConfig {
        cluster: Cluster::threads(2),
        metrics_addr: Some(addr),
        ..RunConfig::default()
    };
    let run = std::thread::scope(|scope| {
        let run = scope.spawn(|| tandem::job::run_pipeline::<Gated>(&args, &config));
        // Both workers read their 50 numbers and the model answers them, while the gate holds
        // the results.
        let mut text = String::new();
        let read = "tandem_stage_input_total{pipeline=\"Gated\",stage=\"read";
        let answered = "tandem_inference_total{";
        let done = common::wait_for(Duration::from_secs(20), || {
            text = scrape(addr).unwrap_or_default();
            series(&text, read) == Some(100.0) && series(&text, answered) == Some(100.0)
        });
        gate.0.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(
            done,
            "the endpoint never showed both workers' reads:\n{text}"
        );
        assert_eq!(text.matches(answered).count(), 1, "{text}");
        for worker in 0..2 {
            assert!(
                text.contains(&format!("queue=\"intake\",worker=\"{worker}\"")),
                "{text}"
            );
        }
        run.join().unwrap()
    });
    let summary = run.unwrap();
    assert_eq!(summary.totals().written, 100);
}
