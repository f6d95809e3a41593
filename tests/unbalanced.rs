//! A run whose counts do not add up writes nothing: not its outputs, and the binary exits 1.
//!
//! Every run checks `read + created = written + filtered + dead + dropped` before it commits its
//! outputs; only a bug in a stage can break it, so this pipeline is wired by hand around a stage
//! with such a bug (it swallows every tenth element without counting it anywhere). A test binary
//! of its own (`harness = false`): the binary half runs the pipeline's `main()` as a child
//! process of this one, with a command line of its own.

use std::path::Path;
use std::process::{Command, ExitCode};

use tandem::context::{Pos, RunContext};
use tandem::exec::Executor;
use tandem::graph::{Edge, Graph, StageInfo, StageKind};
use tandem::job::run_pipeline;
use tandem::prelude::*;
use tandem::push::{Flow, Push, Signal};

#[derive(Clone, Debug, clap::Args)]
struct NoArgs {}

/// read(Memory) -> map(loses every tenth) -> write(JsonLines)
struct Lossy;

static STAGES: [StageInfo; 3] = [
    StageInfo {
        kind: StageKind::Source,
        name: "numbers",
        label: "read(Memory::new(1..=100))",
        line: 1,
    },
    StageInfo {
        kind: StageKind::Map,
        name: "",
        label: "map(loses every tenth)",
        line: 2,
    },
    StageInfo {
        kind: StageKind::Sink,
        name: "sink1",
        label: "write(JsonLines::create(out.jsonl))",
        line: 3,
    },
];
static EDGES: [Edge; 2] = [
    Edge {
        from: 0,
        port: 0,
        to: 1,
        stream: "numbers",
    },
    Edge {
        from: 1,
        port: 0,
        to: 2,
        stream: "",
    },
];
static GRAPH: Graph = Graph {
    name: "Lossy",
    doc: "A pipeline with a stage that loses elements (a bug), for the accounting check.",
    stages: &STAGES,
    edges: &EDGES,
};

/// A stage with a bug: it forgets every tenth element, neither passing it on nor counting it.
struct LosesEveryTenth<N> {
    next: N,
}

impl<N: Push<u64>> Push<u64> for LosesEveryTenth<N> {
    fn push(&mut self, item: u64, pos: Pos, run: &RunContext) {
        if !item.is_multiple_of(10) {
            self.next.push(item, pos, run);
        }
    }
    fn flush(&mut self, run: &RunContext, partial: bool) -> Flow {
        self.next.flush(run, partial)
    }
    fn finish(&mut self, run: &RunContext) -> tandem::Result<()> {
        self.next.finish(run)
    }
    fn signal(&mut self, signal: Signal, run: &RunContext) {
        self.next.signal(signal, run);
    }
}

impl Pipeline for Lossy {
    type Args = NoArgs;
    const NAME: &'static str = "Lossy";

    fn graph() -> &'static Graph {
        &GRAPH
    }

    fn build<'scope, 'env: 'scope>(
        _: &'env NoArgs,
        ex: &mut Executor<'scope, 'env>,
    ) -> tandem::Result<()> {
        let (numbers, stream) = tandem::stages::source(Memory::new(1..=100u64));
        let write = ex.sink(
            2,
            tandem::stages::sink(&stream, JsonLines::create("out.jsonl")),
        )?;
        ex.source(0, numbers, move || LosesEveryTenth { next: write })
    }
}

fn in_process_the_run_fails_and_commits_nothing(dir: &Path) {
    let out = dir.join("in-process.jsonl");
    let config = RunConfig {
        outputs: vec![(None, out.clone())],
        ..RunConfig::default()
    };
    let error = run_pipeline::<Lossy>(&NoArgs {}, &config)
        .unwrap_err()
        .to_string();
    assert!(error.contains("the counts do not add up"), "{error}");
    assert!(error.contains("read 100"), "{error}");
    assert!(
        !out.exists(),
        "an unbalanced run committed `{}`",
        out.display()
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "temporary outputs left behind: {leftovers:?}"
    );
}

fn the_binary_exits_1_and_writes_nothing(dir: &Path) {
    let out = dir.join("binary.jsonl");
    let child = Command::new(std::env::current_exe().unwrap())
        .env("TANDEM_UNBALANCED_CHILD", "1")
        .env_remove("TANDEM_DEAD_LETTERS")
        .args(["--output".as_ref(), out.as_os_str(), "--quiet".as_ref()])
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert_eq!(child.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the counts do not add up"), "{stderr}");
    assert!(!out.exists(), "the binary committed `{}`", out.display());
}

fn main() -> ExitCode {
    if std::env::var_os("TANDEM_UNBALANCED_CHILD").is_some() {
        return Lossy::main();
    }
    let dir = tempfile::tempdir().unwrap();
    in_process_the_run_fails_and_commits_nothing(dir.path());
    println!("test in_process_the_run_fails_and_commits_nothing ... ok");
    let dir = tempfile::tempdir().unwrap();
    the_binary_exits_1_and_writes_nothing(dir.path());
    println!("test the_binary_exits_1_and_writes_nothing ... ok");
    ExitCode::SUCCESS
}
