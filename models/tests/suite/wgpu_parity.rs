//! The wgpu path gives the same outputs as flex (within 1e-4 relative), run on Mesa's software
//! Vulkan driver where there is no GPU. CI installs the driver (`.ci/run`), so there the adapter
//! must exist; elsewhere, without it, the test checks that the failure is a clear error.

use burn::tensor::{Tensor, TensorData};
use tandem_models::device::wgpu_software;
use tandem_models::tiny::{TinyMlp, INPUTS};

fn batch() -> (Vec<f32>, usize) {
    let n = 16;
    let flat = (0..n * INPUTS)
        .map(|i| ((i as f32) * 0.61).sin() * 2.0)
        .collect();
    (flat, n)
}

fn probabilities(device: &burn::tensor::Device) -> Vec<f32> {
    let (flat, n) = batch();
    let x = Tensor::<2>::from_data(TensorData::new(flat, [n, INPUTS]), device);
    TinyMlp::new(device)
        .forward(x)
        .try_into_vec_as::<f32>()
        .unwrap()
}

#[test]
fn wgpu_matches_flex() {
    let flex = probabilities(&burn::tensor::Device::flex());
    match wgpu_software() {
        Ok(device) => {
            let wgpu = probabilities(&device);
            assert_eq!(wgpu.len(), flex.len());
            for (w, f) in wgpu.iter().zip(&flex) {
                assert!(
                    (w - f).abs() / f.abs().max(1e-12) < 1e-4,
                    "wgpu {w} vs flex {f}"
                );
            }
        }
        Err(error) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs a Vulkan driver, yet: {error}"
            );
            let error = error.to_string();
            assert!(error.contains("mesa-vulkan-drivers"), "{error}");
            eprintln!("wgpu not checked here: {error}");
        }
    }
}

mod pipeline {
    //! The whole pipeline on wgpu: `--device gpu` (a real GPU where there is one, else the
    //! software adapter, which `allow_software_gpu` lets the handler take) with two replicas gives
    //! the flex outputs within 1e-4, in input order.

    use tandem::inference::{DeviceChoice, HandlerExt, PredictionResult, Tuned};
    use tandem::prelude::*;
    use tandem_models::tiny::TinyClassifier;

    type Prediction = PredictionResult<[f32; 4], Vec<f32>>;

    struct Args {
        input: Vec<[f32; 4]>,
        model: Tuned<TinyClassifier>,
        out: Collector<Prediction>,
    }

    pipeline! {
        Classify(args: Args) {
            read(Memory::new(args.input.clone()))
                -> run_inference(args.model.clone().replicas(2))
                -> write(args.out.clone());
        }
    }

    fn run(device: DeviceChoice) -> tandem::Result<(Vec<Prediction>, Summary)> {
        let args = Args {
            input: (0..200)
                .map(|i| {
                    let i = i as f32;
                    [
                        (i * 0.37).sin(),
                        (i * 0.11).cos() * 2.0,
                        i / 100.0 - 1.0,
                        0.5,
                    ]
                })
                .collect(),
            model: TinyClassifier::new().max_batch(16).allow_software_gpu(),
            out: Collector::new(),
        };
        let config = RunConfig {
            device,
            ..RunConfig::default()
        };
        let summary = Classify::run_blocking(&args, &config)?;
        assert!(summary.totals().balanced(), "{summary}");
        Ok((args.out.take(), summary))
    }

    #[test]
    fn the_pipeline_on_gpu_gives_the_flex_outputs() {
        let (flex, _) = run(DeviceChoice::Cpu).unwrap();
        match run(DeviceChoice::Gpu) {
            Ok((gpu, summary)) => {
                let metrics = &summary.inference[0];
                assert!(metrics.device.starts_with("gpu"), "{}", metrics.device);
                assert_eq!((metrics.replicas, metrics.inferences), (2, 200));
                assert_eq!(gpu.len(), flex.len());
                for (g, f) in gpu.iter().zip(&flex) {
                    assert_eq!(g.example, f.example, "input order");
                    for (x, y) in g.inference.iter().zip(&f.inference) {
                        assert!(
                            (x - y).abs() / y.abs().max(1e-12) < 1e-4,
                            "gpu {x} vs flex {y} on {}",
                            metrics.device
                        );
                    }
                }
            }
            Err(error) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI installs a Vulkan driver, yet: {error}"
                );
                eprintln!("the wgpu pipeline was not checked here: {error}");
            }
        }
    }
}
