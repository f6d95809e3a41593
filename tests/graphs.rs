//! Graph snapshots: the Mermaid and DOT renderings of the example pipelines, compared with the
//! committed files under `tests/snapshots/`. Regenerate with `TANDEM_BLESS=1 cargo test --test graphs`.

mod common;

use std::path::Path;
use std::process::Command;

use tandem::prelude::*;

fn example_graph(format: &str) -> String {
    let out = Command::new(common::example_binary("ab_split"))
        .args(["--graph", format])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn check(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("TANDEM_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with TANDEM_BLESS=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "{name} changed; run with TANDEM_BLESS=1 if that is intended"
    );
}

pipeline! {
    /// Fan-out, a three-way partition, flat_map and a merge of three streams.
    Shapes(args: Collector<String>) {
        nums = read(Memory::new(0..10u32)) -> map(|x| x + 1);
        [small, mid, big] = nums -> partition(|x: &u32| (*x as usize / 4).min(2));
        nums -> drop();
        s = small -> map(|x| format!("small {x}"));
        m = mid -> flat_map(|x| vec![format!("mid {x}"); 2]);
        b = big -> map(|x| format!("big \"{x}\""));
        merge(s, m, b) -> write(args.clone());
    }
}

#[test]
fn ab_split_graph() {
    check("ab_split.mmd", &example_graph("mermaid"));
    check("ab_split.dot", &example_graph("dot"));
}

#[test]
fn shapes_graph() {
    check("shapes.mmd", &Shapes::graph().mermaid());
    check("shapes.dot", &Shapes::graph().dot());
}

#[test]
fn graph_describes_every_stage_with_its_kind_and_line() {
    let graph = Shapes::graph();
    let kinds: Vec<&str> = graph.stages.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "read",
            "map",
            "partition",
            "drop",
            "map",
            "flat_map",
            "map",
            "merge",
            "write"
        ]
    );
    assert_eq!(graph.stages[0].name, "nums");
    assert_eq!(graph.stages[8].name, "sink1");
    assert!(
        graph.stages.iter().all(|s| s.line > 20),
        "lines are the stages' own"
    );
    assert_eq!(
        graph.doc,
        "Fan-out, a three-way partition, flat_map and a merge of three streams."
    );
    let out = Collector::new();
    Shapes::run_blocking(&out, &RunConfig::default()).unwrap();
    assert_eq!(out.take().len(), 4 + 2 * 4 + 2);
}

#[test]
fn paths_and_sources_upstream_follow_fan_outs_and_partition_arms() {
    let graph = Shapes::graph();
    // read -> map -> partition -> three arms -> merge -> write; the map also feeds the drop.
    assert_eq!(graph.paths(0, 7), 3);
    assert_eq!(graph.paths(0, 8), 3);
    assert_eq!(graph.paths(0, 3), 1);
    assert_eq!(graph.paths(4, 8), 1);
    assert_eq!(graph.paths(8, 0), 0, "no path runs backwards");
    assert_eq!(graph.sources_upstream(8), [0]);
    assert_eq!(graph.sources_upstream(0), Vec::<u32>::new());
}
