//! `run_inference`: batching, results that keep their input and the model id, failures that
//! dead-letter exactly the elements concerned, and a model that cannot load failing the run
//! before anything is read. The handler here is a stand-in whose "model" scales numbers, so these
//! tests need no Burn; the real Burn model runs in `models/tests/`.

use std::sync::{Arc, Mutex};

use tandem::inference::{Batching, DeviceChoice, ModelHandler, PredictionResult};
use tandem::prelude::*;

/// Multiplies by a factor; fails a batch holding 13, panics on one holding 666, refuses to
/// prepare negative numbers, and records every batch size it saw.
#[derive(Clone)]
struct Scale {
    max_batch: usize,
    batches: Arc<Mutex<Vec<usize>>>,
    loads_on: Option<DeviceChoice>,
}

impl Scale {
    fn new(max_batch: usize) -> Self {
        Self {
            max_batch,
            batches: Arc::default(),
            loads_on: None,
        }
    }
}

impl ModelHandler for Scale {
    type Input = i64;
    type Prepared = i64;
    type Inference = i64;
    type Model = i64;

    fn model_id(&self) -> String {
        "scale@3".into()
    }

    fn batching(&self) -> Batching {
        Batching {
            max_batch: self.max_batch,
            ..Batching::default()
        }
    }

    fn load(&self, device: DeviceChoice) -> Result<(i64, String), String> {
        match self.loads_on {
            Some(only) if only != device => Err(format!("this model only runs on {only}")),
            _ => Ok((3, format!("{device}"))),
        }
    }

    fn prepare(&self, input: &i64) -> Result<i64, String> {
        if *input < 0 {
            Err(format!("{input} is negative"))
        } else {
            Ok(*input)
        }
    }

    fn infer(&self, factor: &mut i64, batch: Vec<i64>) -> Result<Vec<i64>, String> {
        self.batches.lock().unwrap().push(batch.len());
        if batch.contains(&13) {
            return Err("unlucky batch".into());
        }
        if batch.contains(&666) {
            panic!("the model fell over");
        }
        Ok(batch.iter().map(|x| x * *factor).collect())
    }
}

struct Args {
    input: Vec<i64>,
    model: Scale,
    out: Collector<PredictionResult<i64, i64>>,
}

pipeline! {
    Scaled(args: Args) {
        read(Memory::new(args.input.clone())) -> run_inference(args.model.clone()) -> write(args.out.clone());
    }
}

fn run(input: Vec<i64>, model: Scale, config: &RunConfig) -> (Args, tandem::Result<Summary>) {
    let args = Args {
        input,
        model,
        out: Collector::new(),
    };
    let summary = Scaled::run_blocking(&args, config);
    (args, summary)
}

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
    assert_eq!(*args.model.batches.lock().unwrap(), [4, 4, 2]);
    let metrics = &summary.inference[0];
    assert_eq!(
        (metrics.inferences, metrics.batches, metrics.largest_batch),
        (10, 3, 4)
    );
    assert_eq!(metrics.device, "auto");
    assert!(
        summary
            .to_string()
            .contains("model `scale@3` on auto: 10 inferences in 3 batches"),
        "{summary}"
    );
    assert!(summary.totals().balanced());
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
    assert_eq!(*args.model.batches.lock().unwrap(), [3]);
    assert_eq!(summary.dead_letters.len(), 1);
    assert_eq!(summary.dead_letters[0].position, 2);
    assert!(summary.dead_letters[0].error.contains("-2 is negative"));
    assert!(summary.totals().balanced());
}

#[test]
fn a_failing_or_panicking_batch_dead_letters_its_elements_and_the_run_goes_on() {
    // Batches of 3: [10 11 12], [13 14 15] fails, [16 17 18], [666 19 20] panics, [21].
    let input = vec![10, 11, 12, 13, 14, 15, 16, 17, 18, 666, 19, 20, 21];
    let (args, summary) = run(input, Scale::new(3), &RunConfig::default());
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
    assert!(summary.totals().balanced(), "{summary}");
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
        "cannot load model `scale@3` (--device cpu): this model only runs on gpu"
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
