//! `run_inference`: batching (max batch, max wait, min batch), results in input order that keep
//! their input and the model id, failures that dead-letter exactly the elements concerned,
//! replicas, the per-batch timeout, keyed models, hot swap and the metrics endpoint. The handler
//! is `Scale`, a stand-in whose "model" multiplies by a factor (tests/common), so these tests need
//! no Burn; the real Burn model runs the same way in `models/tests/`.

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{run, run_tuned, wait_for, Scale};
use tandem::inference::{DeviceChoice, HandlerExt, PredictionResult};
use tandem::prelude::*;

#[test]
fn batches_fill_up_to_max_batch_and_results_keep_input_and_model_id() {
    let (args, summary) = run((0..10).collect(), Scale::new(4), &RunConfig::default());
    let summary = summary.unwrap();
    let out = args.out.take();
    assert_eq!(
        out.iter()
            .map(|r| (r.example, r.inference))
            .collect::<Vec<_>>(),
        (0..10).map(|x| (x, 3 * x)).collect::<Vec<_>>()
    );
    assert!(out.iter().all(|r| &*r.model_id == "scale@3"));
    assert_eq!(args.model.sizes(), [4, 4, 2]);
    let metrics = &summary.inference[0];
    assert_eq!(
        (metrics.inferences, metrics.batches, metrics.largest_batch),
        (10, 3, 4)
    );
    assert_eq!(metrics.batch_size.count, 3);
    assert_eq!(metrics.latency.count, 3);
    assert_eq!(metrics.queue_wait.count, 3);
    assert_eq!(metrics.device, "auto");
    assert!(
        summary
            .to_string()
            .contains("model `scale@3` on auto (1 replica): 10 inferences in 3 batches"),
        "{summary}"
    );
}

#[test]
fn max_wait_runs_a_partial_batch_while_the_source_is_blocked() {
    let model = Scale::new(100);
    let seen = model.batches.clone();
    let ran_while_blocked = Arc::new(AtomicUsize::new(0));
    let flag = ran_while_blocked.clone();
    // Three inputs, then the source blocks until the model has run them (at most 10 s).
    let input = (0..4).inspect(move |&i| {
        if i == 3 && wait_for(Duration::from_secs(10), || !seen.lock().unwrap().is_empty()) {
            flag.store(1, SeqCst);
        }
    });
    let (args, _) = run_tuned(input, model.max_wait(Duration::from_millis(20)));
    assert_eq!(
        ran_while_blocked.load(SeqCst),
        1,
        "the partial batch waited for the source"
    );
    assert_eq!(args.model.inner().sizes(), [3, 1]);
    assert_eq!(args.out.take().len(), 4);
}

#[test]
fn min_batch_holds_a_partial_batch_until_it_has_enough() {
    let model = Scale::new(10);
    // Three inputs, a pause far longer than max_wait, three more.
    let input = (0..6).inspect(|&i| {
        if i == 3 {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (args, _) = run_tuned(input, model.max_wait(Duration::from_millis(1)).min_batch(4));
    let sizes = args.model.inner().sizes();
    assert!(sizes[0] >= 4, "a batch below min_batch ran: {sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 6);
    // Without min_batch the pause splits the input.
    let (args, _) = run_tuned(
        (0..6).inspect(|&i| {
            if i == 3 {
                std::thread::sleep(Duration::from_millis(300));
            }
        }),
        Scale::new(10).max_wait(Duration::from_millis(1)),
    );
    assert_eq!(args.model.inner().sizes()[0], 3);
}

#[test]
fn replicas_run_batches_at_once_and_results_stay_in_input_order() {
    let mut model = Scale::new(2);
    model.slow = Some((-1, Duration::from_millis(30)));
    let (args, summary) = run_tuned(0..24, model.replicas(3));
    let out: Vec<i64> = args.out.take().iter().map(|r| r.example).collect();
    assert_eq!(out, (0..24).collect::<Vec<_>>(), "output keeps input order");
    let inner = args.model.inner();
    assert_eq!(
        inner.most_running.load(SeqCst),
        3,
        "three replicas ran at once"
    );
    assert_eq!(inner.loads.load(SeqCst), 3, "one model loaded per replica");
    let threads = inner.threads.lock().unwrap().clone();
    for replica in 0..3 {
        let name = format!("tandem-model-{replica}");
        let ran = threads.iter().filter(|t| **t == name).count();
        assert!(
            ran >= 2,
            "replica {replica} ran {ran} of 12 batches: {threads:?}"
        );
    }
    assert_eq!(summary.inference[0].replicas, 3);
    assert_eq!(summary.inference[0].batches, 12);
}

#[test]
fn the_next_batches_are_prepared_while_the_model_runs() {
    let mut model = Scale::new(4);
    model.slow = Some((-1, Duration::from_millis(20)));
    let (args, _) = run_tuned(0..40, model.max_batch(4));
    // Batch k holds inputs 4k..4k+3; when it starts, inputs of later batches are prepared
    // already (on the source's thread), not one batch at a time after the model is done.
    let at_start = args.model.inner().prepared_at_start.lock().unwrap().clone();
    assert_eq!(at_start.len(), 10);
    assert!(
        at_start[1..9]
            .iter()
            .enumerate()
            .all(|(k, &n)| n >= 4 * (k + 3)),
        "prepared inputs when each batch started: {at_start:?}"
    );
}

#[test]
fn a_batch_that_times_out_is_dead_lettered_and_its_replica_replaced() {
    let mut model = Scale::new(4);
    // The batch holding 7 takes 3 s: far past the timeout.
    model.slow = Some((7, Duration::from_secs(3)));
    let started = Instant::now();
    let (args, summary) = run_tuned(0..12, model.timeout(Duration::from_millis(100)));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the run waited for the stuck batch"
    );
    let out: Vec<i64> = args.out.take().iter().map(|r| r.example).collect();
    assert_eq!(out, [0, 1, 2, 3, 8, 9, 10, 11]);
    let dead: Vec<u64> = summary.dead_letters.iter().map(|d| d.position).collect();
    assert_eq!(dead, [5, 6, 7, 8]);
    for letter in &summary.dead_letters {
        assert!(
            letter
                .error
                .contains("model `scale@3` did not answer within the timeout of 100ms"),
            "{}",
            letter.error
        );
    }
    let m = &summary.inference[0];
    assert_eq!((m.timeouts, m.replacements, m.inferences), (1, 1, 8));
    assert_eq!(
        args.model.inner().loads.load(SeqCst),
        2,
        "the replica was loaded again"
    );
}

#[test]
fn an_input_that_fails_preparation_is_dead_lettered_alone() {
    let (args, summary) = run(vec![1, -2, 3, 4], Scale::new(8), &RunConfig::default());
    let summary = summary.unwrap();
    assert_eq!(
        args.out
            .take()
            .iter()
            .map(|r| r.inference)
            .collect::<Vec<_>>(),
        [3, 9, 12]
    );
    assert_eq!(args.model.sizes(), [3]);
    assert_eq!(summary.dead_letters.len(), 1);
    assert_eq!(summary.dead_letters[0].position, 2);
    assert!(summary.dead_letters[0].error.contains("-2 is negative"));
    assert_eq!(summary.inference[0].prepare_failures, 1);
}

#[test]
fn a_failing_or_panicking_batch_dead_letters_its_elements_and_the_run_goes_on() {
    // Batches of 3: [10 11 12], [13 14 15] fails, [16 17 18], [666 19 20] panics, [21].
    let input = vec![10, 11, 12, 13, 14, 15, 16, 17, 18, 666, 19, 20, 21];
    let mut model = Scale::new(3);
    model.fail_on = Some(13);
    let (args, summary) = run(input, model, &RunConfig::default());
    let summary = summary.unwrap();
    let served: Vec<i64> = args.out.take().iter().map(|r| r.example).collect();
    assert_eq!(served, [10, 11, 12, 16, 17, 18, 21]);
    let dead: Vec<(u64, bool)> = summary
        .dead_letters
        .iter()
        .map(|d| {
            (
                d.position,
                d.error.contains("unlucky batch") || d.error.contains("the model fell over"),
            )
        })
        .collect();
    assert_eq!(
        dead,
        [
            (4, true),
            (5, true),
            (6, true),
            (10, true),
            (11, true),
            (12, true)
        ]
    );
    assert_eq!(summary.inference[0].failed_batches, 2);
}

#[test]
fn a_device_lost_mid_run_dead_letters_every_later_batch_and_the_run_ends_with_the_counts() {
    let mut model = Scale::new(4);
    model.lost_from = Some((20, Arc::default()));
    let (args, summary) = run((0..50).collect(), model, &RunConfig::default());
    let summary = summary.unwrap();
    let served: Vec<i64> = args.out.take().iter().map(|r| r.example).collect();
    assert_eq!(served, (0..20).collect::<Vec<_>>());
    assert_eq!(summary.dead_letters.len(), 30);
    assert!(summary
        .dead_letters
        .iter()
        .all(|d| d.error.contains("device lost")));
    assert_eq!(summary.inference[0].failed_batches, 8);
}

#[test]
fn fail_fast_turns_a_failing_batch_into_a_failed_run() {
    let mut model = Scale::new(3);
    model.fail_on = Some(13);
    let config = RunConfig {
        fail_fast: true,
        ..RunConfig::default()
    };
    let (_, summary) = run((10..40).collect(), model, &config);
    let error = summary.unwrap_err().to_string();
    assert!(error.contains("unlucky batch"), "{error}");
}

#[test]
fn a_model_that_cannot_load_fails_the_run_before_anything_is_read() {
    let mut model = Scale::new(4);
    model.loads_on = Some(DeviceChoice::Gpu);
    let (args, summary) = run(
        vec![1, 2],
        model,
        &RunConfig {
            device: DeviceChoice::Cpu,
            ..RunConfig::default()
        },
    );
    let error = summary.unwrap_err().to_string();
    assert_eq!(
        error,
        "cannot load model `scale` (--device cpu): this model only runs on gpu"
    );
    assert!(args.model.batches.lock().unwrap().is_empty());
}

#[test]
fn the_device_choice_reaches_the_handler() {
    let (_, summary) = run(
        vec![1],
        Scale::new(4),
        &RunConfig {
            device: DeviceChoice::Cpu,
            ..RunConfig::default()
        },
    );
    assert_eq!(summary.unwrap().inference[0].device, "cpu");
}

struct KeyedArgs {
    input: Vec<i64>,
    even: Scale,
    odd: Scale,
    out: Collector<PredictionResult<(&'static str, i64), i64>>,
}

pipeline! {
    ByParity(args: KeyedArgs) {
        read(Memory::new(args.input.clone()))
            -> key_by(|x: &i64| match x { 5 => "five", x if x % 2 == 0 => "even", _ => "odd" })
            -> run_inference(tandem::inference::keyed([
                ("even", args.even.clone()),
                ("odd", args.odd.clone()),
            ]))
            -> write(args.out.clone());
    }
}

#[test]
fn keyed_models_answer_their_own_keys_and_load_once() {
    let mut even = Scale::new(4);
    even.factor = 10;
    let mut odd = Scale::new(4);
    odd.factor = 100;
    let args = KeyedArgs {
        input: (0..20).collect(),
        even,
        odd,
        out: Collector::new(),
    };
    let summary = ByParity::run_blocking(&args, &RunConfig::default()).unwrap();
    let out = args.out.take();
    assert_eq!(out.len(), 19);
    for r in &out {
        let (key, x) = r.example;
        let (factor, id) = if x % 2 == 0 {
            (10, "scale@10")
        } else {
            (100, "scale@100")
        };
        assert_eq!(key, if x % 2 == 0 { "even" } else { "odd" });
        assert_eq!((r.inference, &*r.model_id), (x * factor, id), "{x}");
    }
    // Each model loaded once and only ever saw its own key's inputs.
    assert_eq!(args.even.loads.load(SeqCst), 1);
    assert_eq!(args.odd.loads.load(SeqCst), 1);
    assert!(args
        .even
        .batches
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .all(|x| x % 2 == 0));
    assert!(args
        .odd
        .batches
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .all(|x| x % 2 == 1));
    assert_eq!(args.even.sizes().iter().sum::<usize>(), 10);
    assert_eq!(summary.dead_letters.len(), 1);
    assert_eq!(summary.dead_letters[0].position, 6);
    assert!(
        summary.dead_letters[0]
            .error
            .contains(r#"no model for the key "five" (models are keyed "even", "odd")"#),
        "{}",
        summary.dead_letters[0].error
    );
    assert_eq!(summary.inference[0].model_id, "scale@10, scale@100");
}

/// Replaces `path` the way a deployment should: write beside it, then rename over it.
fn replace(path: &std::path::Path, text: &str) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

#[test]
fn hot_swap_switches_the_model_atomically_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("factor.txt");
    std::fs::write(&weights, "2").unwrap();
    let mut model = Scale::new(8);
    model.weights = Some(weights.clone());
    let loads = model.loads.clone();
    let path = weights.clone();
    // Mid-run: first a broken file (the running model must stay), then new weights.
    let input = (0..600).inspect(move |&i| {
        let (text, loaded) = match i {
            200 => ("not a number", 2),
            400 => ("5", 3),
            _ => return,
        };
        replace(&path, text);
        assert!(wait_for(Duration::from_secs(10), || loads.load(SeqCst) >= loaded));
        // Let the dispatcher take the new model before more input arrives.
        std::thread::sleep(Duration::from_millis(50));
    });
    let (args, summary) = run_tuned(
        input,
        model
            .watch(weights)
            .poll(Duration::from_millis(5))
            .max_wait(Duration::from_millis(1)),
    );
    let out = args.out.take();
    // Nothing lost, nothing duplicated, in order.
    assert_eq!(
        out.iter().map(|r| r.example).collect::<Vec<_>>(),
        (0..600).collect::<Vec<_>>()
    );
    // Every result was computed by the model its id names, and the id switches once.
    for r in &out {
        let factor: i64 = r.model_id.strip_prefix("scale@").unwrap().parse().unwrap();
        assert_eq!(r.inference, r.example * factor, "{r:?}");
    }
    let first_new = out
        .iter()
        .position(|r| &*r.model_id == "scale@5")
        .expect("the swap happened");
    assert!(out[..first_new].iter().all(|r| &*r.model_id == "scale@2"));
    assert!(out[first_new..].iter().all(|r| &*r.model_id == "scale@5"));
    assert!(
        (200..=400).contains(&(first_new as i64)),
        "swapped at {first_new}"
    );
    assert_eq!(out[599].model_id.as_ref(), "scale@5");
    let m = &summary.inference[0];
    assert_eq!((m.swaps, m.swap_failures), (1, 1));
    assert_eq!(m.model_id, "scale@5");
}

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
            let done = sample(&b, "tandem_inference_total", "model=\"scale\"") == Some(50.0);
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
        "the endpoint never showed 50 inferences; last scrape:\n{head}\n{body}"
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
