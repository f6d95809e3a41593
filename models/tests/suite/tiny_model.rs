//! The Burn model behind `run_inference`, end to end: a pipeline runs the deterministic tiny
//! classifier on flex in batches, and every probability matches the same network computed in
//! plain Rust (`tiny::reference`) within 1e-5 relative. Where wgpu finds a GPU, the same inputs
//! give the same outputs there within 1e-4.

use tandem::inference::{DeviceChoice, PredictionResult};
use tandem::prelude::*;
use tandem_models::tiny::{reference, TinyClassifier};

type Prediction = PredictionResult<[f32; 4], Vec<f32>>;

struct Args {
    input: Vec<[f32; 4]>,
    out: Collector<Prediction>,
}

pipeline! {
    Classify(args: Args) {
        read(Memory::new(args.input.clone()))
            -> run_inference(TinyClassifier::new().max_batch(4))
            -> write(args.out.clone());
    }
}

fn inputs() -> Vec<[f32; 4]> {
    (0..10)
        .map(|i| {
            let i = i as f32;
            [
                i * 0.3 - 1.0,
                (i * 0.7).sin() * 2.0,
                1.5 - i * 0.2,
                (i * 1.3).cos(),
            ]
        })
        .collect()
}

fn run_on(device: DeviceChoice, input: Vec<[f32; 4]>) -> (Vec<Prediction>, Summary) {
    let args = Args {
        input,
        out: Collector::new(),
    };
    let summary = Classify::run_blocking(
        &args,
        &RunConfig {
            device,
            ..RunConfig::default()
        },
    )
    .unwrap();
    assert!(summary.totals().balanced(), "{summary}");
    (args.out.take(), summary)
}

fn relative_error(got: f32, want: f64) -> f64 {
    (f64::from(got) - want).abs() / want.abs().max(1e-12)
}

#[test]
fn the_tiny_model_on_flex_matches_the_plain_rust_reference() {
    let (out, summary) = run_on(DeviceChoice::Cpu, inputs());
    assert_eq!(out.len(), 10);
    for result in &out {
        let want = reference(result.example);
        assert_eq!(result.inference.len(), 3);
        for (got, want) in result.inference.iter().zip(want) {
            assert!(
                relative_error(*got, want) < 1e-5,
                "{got} vs {want} for {:?}",
                result.example
            );
        }
        assert_eq!(&*result.model_id, "tiny-mlp-4x8x3");
    }
    let metrics = &summary.inference[0];
    assert_eq!(metrics.device, "cpu (burn flex)");
    assert_eq!((metrics.batches, metrics.largest_batch), (3, 4));
}

#[test]
fn a_non_finite_input_is_dead_lettered_alone() {
    let mut input = inputs();
    input[3][2] = f32::NAN;
    let (out, summary) = run_on(DeviceChoice::Cpu, input);
    assert_eq!(out.len(), 9);
    assert_eq!(summary.dead_letters.len(), 1);
    assert_eq!(summary.dead_letters[0].position, 4);
    assert!(summary.dead_letters[0]
        .error
        .contains("not a finite number"));
}

#[test]
fn auto_runs_where_gpu_would_and_gives_the_same_outputs() {
    // `auto` is wgpu where a GPU adapter exists and flex elsewhere; either way the outputs must
    // match flex's. `--device gpu` without a GPU must be a clear error, not a fallback.
    let (flex, _) = run_on(DeviceChoice::Cpu, inputs());
    let (auto, summary) = run_on(DeviceChoice::Auto, inputs());
    for (a, b) in auto.iter().zip(&flex) {
        for (x, y) in a.inference.iter().zip(&b.inference) {
            assert!(
                relative_error(*x, f64::from(*y)) < 1e-4,
                "{x} vs {y} on {}",
                summary.inference[0].device
            );
        }
    }
    let gpu = Classify::run_blocking(
        &Args {
            input: inputs(),
            out: Collector::new(),
        },
        &RunConfig {
            device: DeviceChoice::Gpu,
            ..RunConfig::default()
        },
    );
    match (summary.inference[0].device.starts_with("gpu"), gpu) {
        (true, Ok(_)) => {}
        (false, Err(error)) => {
            let text = error.to_string();
            assert!(
                text.contains("no GPU can be used") && text.contains("--device cpu"),
                "{text}"
            );
        }
        (true, Err(error)) => panic!("auto found a GPU but --device gpu failed: {error}"),
        (false, Ok(_)) => panic!("auto found no GPU but --device gpu ran"),
    }
}
