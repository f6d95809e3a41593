//! The metrics endpoint while a model runs: Prometheus text with the inference counters,
//! histograms and queue gauges mid-run, the same figures as the summary, and gone after the run.
//! (The endpoint under hostile clients, and the methods and paths it answers, are in
//! tests/metrics_endpoint.rs.) The model is `Scale`, a stand-in (tests/common).

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::{run, wait_for, Scale};
use tandem::prelude::*;

/// `GET /metrics` on `port`: (status line and headers, body).
fn scrape(port: u16) -> Option<(String, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((head.to_owned(), body.to_owned()))
}

/// The value of the first sample of `metric` (a full name, e.g. `x_bucket`) whose labels contain
/// `label`.
fn sample(body: &str, metric: &str, label: &str) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(label))
        .find_map(|l| l.rsplit_once(' ')?.1.parse().ok())
}

#[test]
fn the_metrics_endpoint_serves_prometheus_text_while_the_pipeline_runs() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let open = Arc::new(AtomicUsize::new(0));
    let mut model = Scale::new(10);
    // Batches 0-9 .. 40-49 run; the batch holding 50 waits until the test has scraped.
    model.gate = Some((50, open.clone()));
    let config = RunConfig {
        metrics_addr: Some(([127, 0, 0, 1], port).into()),
        ..RunConfig::default()
    };
    let runner = std::thread::spawn(move || run((0..100).collect(), model, &config));
    let mut body = String::new();
    let mut head = String::new();
    let seen = wait_for(Duration::from_secs(20), || match scrape(port) {
        Some((h, b)) => {
            // The source publishes its count once its chunk is read, which may be after the
            // first batches were answered: wait for both.
            let done = sample(&b, "tandem_inference_total", "model=\"scale\"") == Some(50.0)
                && sample(&b, "tandem_stage_input_total", "stage=\"read(") == Some(100.0);
            (head, body) = (h, b);
            done
        }
        None => false,
    });
    open.store(1, SeqCst);
    let (_, summary) = runner.join().unwrap();
    let summary = summary.unwrap();
    assert!(
        seen,
        "the endpoint never showed 100 read and 50 inferences; last scrape:\n{head}\n{body}"
    );
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        body.contains("# TYPE tandem_inference_batch_seconds histogram"),
        "{body}"
    );
    // Six batches of 10 handed out (five answered, one waiting at the gate).
    assert_eq!(
        sample(&body, "tandem_inference_batches_total", "stage=\"1\""),
        Some(6.0)
    );
    assert_eq!(
        sample(&body, "tandem_inference_batch_size_bucket", "le=\"16\""),
        Some(6.0)
    );
    assert_eq!(
        sample(&body, "tandem_inference_batch_size_bucket", "le=\"8\""),
        Some(0.0)
    );
    assert_eq!(
        sample(&body, "tandem_inference_batch_seconds_count", ""),
        Some(5.0)
    );
    assert_eq!(sample(&body, "tandem_inference_replicas", ""), Some(1.0));
    assert!(sample(
        &body,
        "tandem_inference_load_seconds",
        "model_id=\"scale@3\""
    )
    .is_some());
    assert_eq!(
        sample(&body, "tandem_stage_input_total", "stage=\"read("),
        Some(100.0),
        "{body}"
    );
    // The model's intake and results queues, with their bounds (RunConfig's channel capacity).
    let capacity = RunConfig::default().channel_capacity as f64;
    for queue in ["intake", "results"] {
        let label = format!("queue=\"{queue}\"");
        assert_eq!(
            sample(&body, "tandem_queue_capacity_batches", &label),
            Some(capacity),
            "{body}"
        );
        let peak = sample(&body, "tandem_queue_peak_batches", &label).unwrap();
        let now = sample(&body, "tandem_queue_batches", &label).unwrap();
        assert!(now <= peak && peak <= capacity, "{body}");
    }
    // The summary has the same figures, complete.
    let m = &summary.inference[0];
    assert_eq!((m.inferences, m.batches, m.batch_size.count), (100, 10, 10));
    // After the run the endpoint is gone.
    assert!(scrape(port).is_none());
}
