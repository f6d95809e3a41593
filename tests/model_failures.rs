//! A model that fails: an input that fails preparation, a batch that fails or panics and a device
//! lost mid-run dead-letter exactly the elements concerned and the run goes on; fail-fast turns a
//! failing batch into a failed run; a model that cannot load fails the run before anything is
//! read; the device choice reaches the handler. The model is `Scale`, a stand-in (tests/common).

mod common;

use std::sync::Arc;

use common::{run, Scale};
use tandem::inference::DeviceChoice;
use tandem::prelude::*;

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
