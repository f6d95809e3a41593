//! `run_inference`'s batching: batches fill up to max batch and results keep their input and
//! the model id, max wait runs a partial batch, min batch holds one back, and the next batches are
//! prepared while the model runs. The model is `Scale`, a stand-in (tests/common).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::{run, run_tuned, wait_for, Scale};
use tandem::inference::HandlerExt;
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
fn max_wait_runs_a_partial_batch_that_follows_full_ones_while_the_source_is_blocked() {
    // The front tells the dispatcher of a new partial batch only when its timer is not already
    // set: after full batches the timer set for the first one must still find the last.
    let model = Scale::new(100);
    let seen = model.batches.clone();
    let ran_while_blocked = Arc::new(AtomicUsize::new(0));
    let flag = ran_while_blocked.clone();
    // Two full batches and one input, then the source blocks until the model has run all three.
    let input = (0..6).inspect(move |&i| {
        if i == 5 && wait_for(Duration::from_secs(10), || seen.lock().unwrap().len() == 3) {
            flag.store(1, SeqCst);
        }
    });
    let model = model.max_batch(2).max_wait(Duration::from_millis(20));
    let (args, _) = run_tuned(input, model);
    assert_eq!(
        ran_while_blocked.load(SeqCst),
        1,
        "the partial batch after the full ones waited for the source"
    );
    assert_eq!(args.model.inner().sizes(), [2, 2, 1, 1]);
    assert_eq!(args.out.take().len(), 6);
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
