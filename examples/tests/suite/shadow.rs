//! `examples/shadow.rs` end to end on the CPU: every request is served by Lite0, Lite2 answers
//! the copies it takes, the report joins the two; with `--no-shadow` the shadow sees nothing;
//! a shadow that cannot keep up is not copied to, rather than holding up the served path; and the
//! shadow computes on its own capped pool of CPU threads.

#[allow(dead_code)]
#[path = "../../shadow.rs"]
mod example;

use crate::common;

use std::path::Path;
use std::sync::Arc;

use example::{Shadow, ShadowArgs, Shadowed, Traffic};
use tandem::inference::{DeviceRequest, Loaded, ModelHandler};

fn run(dir: &Path, requests: usize, rate: f64, no_shadow: bool, queue: u32) -> serde_json::Value {
    let args = ShadowArgs {
        images: Vec::new(),
        requests,
        rate,
        no_shadow,
        shadow_queue: queue,
        shadow_threads: 1,
        responses: dir.join("responses.jsonl"),
        report: dir.join("report.json"),
        traffic: Default::default(),
    };
    let summary = common::run_on_cpu::<Shadow>(&args);
    assert!(summary.dead_letters.is_empty(), "{summary}");
    let responses = std::fs::read_to_string(&args.responses).unwrap();
    assert_eq!(
        responses.lines().count(),
        requests,
        "every request is served"
    );
    for (i, line) in responses.lines().enumerate() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["id"], i as u64, "in order");
        assert!(r["model_id"]
            .as_str()
            .unwrap()
            .starts_with("efficientnet-lite0-"));
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&args.report).unwrap()).unwrap();
    eprintln!("{report:#}");
    let served = &report["latency_ms"][0];
    assert_eq!(served["arm"], "served");
    assert_eq!(served["answered"], requests as u64);
    let (p50, p90, p99, max) = (
        served["p50"].as_f64().unwrap(),
        served["p90"].as_f64().unwrap(),
        served["p99"].as_f64().unwrap(),
        served["max"].as_f64().unwrap(),
    );
    assert!(
        0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
        "{served}"
    );
    report
}

#[test]
fn the_shadow_answers_copies_and_the_report_joins_them() {
    let dir = tempfile::tempdir().unwrap();
    let report = run(dir.path(), 12, 6.0, false, 2);
    let shadow = &report["latency_ms"][1];
    assert_eq!(shadow["arm"], "shadow");
    assert!(shadow["model_id"]
        .as_str()
        .unwrap()
        .starts_with("efficientnet-lite2-"));
    let answered = shadow["answered"].as_u64().unwrap();
    let not_copied = report["not_copied"].as_u64().unwrap();
    assert_eq!(answered + not_copied, 12, "{report:#}");
    assert!(answered > 0);
    assert_eq!(report["compared"].as_u64().unwrap(), answered);
    let agreed = report["agreed"].as_u64().unwrap();
    let disagreements = report["disagreements"].as_array().unwrap().len() as u64;
    assert_eq!(agreed + disagreements, answered);
}

#[test]
fn without_the_shadow_only_the_served_path_runs() {
    let dir = tempfile::tempdir().unwrap();
    let report = run(dir.path(), 6, 6.0, true, 2);
    assert_eq!(report["latency_ms"][1]["answered"], 0);
    assert_eq!(report["compared"], 0);
    assert!(report["agreement"].is_null());
}

#[test]
fn the_shadow_is_copied_a_request_only_while_it_holds_fewer_than_its_queue() {
    let traffic = Traffic::default();
    assert!(traffic.admit(2));
    assert!(traffic.admit(2));
    assert!(!traffic.admit(2), "it holds two");
    traffic.release(1);
    assert!(traffic.admit(2));
    assert_eq!(traffic.not_copied(), 1);
}

#[test]
fn a_backlog_is_served_whole_while_the_busy_shadow_takes_what_it_can() {
    // All requests at once and a shadow that holds one at a time: the served path answers every
    // request; how many the shadow takes depends on how fast it is against the reading thread,
    // but it never holds up the served path, and every request is either copied or counted.
    let dir = tempfile::tempdir().unwrap();
    let report = run(dir.path(), 12, 0.0, false, 1);
    let not_copied = report["not_copied"].as_u64().unwrap();
    let answered = report["latency_ms"][1]["answered"].as_u64().unwrap();
    eprintln!("the shadow answered {answered}, {not_copied} not copied");
    assert!(answered >= 1);
    assert_eq!(answered + not_copied, 12);
}

/// A stand-in model that answers with how many threads rayon gives it: Burn's CPU backend
/// computes on as many.
struct Threads;

impl ModelHandler for Threads {
    type Input = u32;
    type Prepared = u32;
    type Inference = usize;
    type Model = ();

    fn name(&self) -> String {
        "threads".into()
    }

    fn load(&self, _: DeviceRequest) -> Result<Loaded<()>, String> {
        Ok(Loaded::new((), "cpu", "threads-v1"))
    }

    fn prepare(&self, x: &u32) -> Result<u32, String> {
        Ok(*x)
    }

    fn infer(&self, _: &mut (), batch: Vec<u32>) -> Result<Vec<usize>, String> {
        Ok(batch.iter().map(|_| rayon::current_num_threads()).collect())
    }
}

#[test]
fn the_shadow_computes_on_its_own_threads() {
    let traffic = Arc::new(Traffic::default());
    for _ in 0..3 {
        assert!(traffic.admit(3));
    }
    let capped = Shadowed::new(Threads, traffic.clone()).threads(1);
    assert_eq!(capped.infer(&mut (), vec![1, 2]).unwrap(), vec![1, 1]);
    let shared = Shadowed::new(Threads, traffic.clone()).threads(0);
    assert_eq!(
        shared.infer(&mut (), vec![3]).unwrap(),
        vec![rayon::current_num_threads()]
    );
    assert!(traffic.admit(1), "every request given back");
}
