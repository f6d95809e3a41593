//! `run_inference` with replicas: batches run at once on several models and results stay in input
//! order; a batch past the per-batch timeout is dead-lettered and its replica replaced. The model
//! is `Scale`, a stand-in (tests/common).

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use common::{run_tuned, Scale};
use tandem::inference::HandlerExt;

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
