//! Throughput of each pretrained model on the CPU (flex), single-threaded caller, at batch 1 and
//! 16: items per second through the handler's `prepare` (tokenizing, decoding and resizing an
//! image) and `infer` (the forward pass and reading the outputs back), the figures in the
//! README's model table.
//!
//! Three figures each: end to end (`prepare` + `infer`), model only (`infer` on inputs prepared
//! before the clock starts) and `prepare` only.
//!
//! `cargo bench -p tandem-models --bench models` (fetches the weights and photos on first use);
//! `TANDEM_BENCH_ONLY=Lite0` for the models whose name contains `Lite0`.
//! Each figure runs batches for at least `TANDEM_BENCH_SECONDS` (default 5) after one warm-up
//! batch.

use std::time::{Duration, Instant};

use burn::tensor::{Distribution, Tensor};

use tandem::inference::{DeviceChoice, HandlerExt, ModelHandler};
use tandem_models::blip::BlipCaptioner;
use tandem_models::clip::{ClipQuery, ClipRanker};
use tandem_models::efficientnet::EfficientNetLite;
use tandem_models::fetch::PHOTOS;
use tandem_models::minilm::MiniLm;
use tandem_models::mtcnn::Mtcnn;

/// Items per second: end to end (`prepare` + `infer`), model only (`infer` on inputs prepared
/// once before the clock starts) and `prepare` only, each for at least `run`.
struct Figures {
    end_to_end: f64,
    model_only: f64,
    prepare_only: f64,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Three significant digits at least (BLIP runs below one image per second).
        let rate = |x: f64| {
            if x < 10.0 {
                format!("{x:.2}")
            } else {
                format!("{x:.1}")
            }
        };
        write!(
            f,
            "{}/s end to end, {}/s model only, {}/s prepare only",
            rate(self.end_to_end),
            rate(self.model_only),
            rate(self.prepare_only)
        )
    }
}

/// Items per second through `work` (a batch of `batch` items per call), calling it for at least
/// `run` (and three times) after one warm-up call.
fn items_per_second(batch: usize, run: Duration, mut work: impl FnMut()) -> f64 {
    work();
    let start = Instant::now();
    let mut items = 0;
    while start.elapsed() < run || items < 3 * batch {
        work();
        items += batch;
    }
    items as f64 / start.elapsed().as_secs_f64()
}

fn figures<H: ModelHandler>(
    handler: &H,
    inputs: &[H::Input],
    batch: usize,
    run: Duration,
) -> Figures
where
    H::Prepared: Clone,
{
    let mut model = handler
        .load(DeviceChoice::Cpu.into())
        .expect("the model loads")
        .model;
    let next = std::cell::Cell::new(0);
    let prepare_batch = || -> Vec<H::Prepared> {
        (0..batch)
            .map(|_| {
                let input = &inputs[next.get() % inputs.len()];
                next.set(next.get() + 1);
                handler.prepare(input).expect("prepares")
            })
            .collect()
    };
    let infer = |model: &mut H::Model, prepared: Vec<H::Prepared>| {
        let out = handler.infer(model, prepared).expect("runs");
        assert_eq!(out.len(), batch);
    };
    let end_to_end = items_per_second(batch, run, || {
        let prepared = prepare_batch();
        infer(&mut model, prepared);
    });
    // The first `batch` inputs, as the anchors (`anchors.py`) take them: at batch 1 the model's
    // cost depends on which photo or sentence it is.
    next.set(0);
    let prepared = prepare_batch();
    let model_only = items_per_second(batch, run, || infer(&mut model, prepared.clone()));
    let prepare_only = items_per_second(batch, run, || {
        std::hint::black_box(prepare_batch());
    });
    Figures {
        end_to_end,
        model_only,
        prepare_only,
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let seconds: f64 = std::env::var("TANDEM_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 5.0 } else { 0.0 });
    let run = Duration::from_secs_f64(seconds);
    let sentences: Vec<String> = [
        "A man is eating food.",
        "A man is riding a white horse on an enclosed ground.",
        "The new movie is awesome, everyone should see it.",
        "Two people are walking their dog along a beach at sunset while the tide comes in.",
        "Espresso is brewed by forcing hot water through finely ground coffee.",
        "The committee postponed the vote until the next quarterly meeting.",
        "A cat sleeps.",
        "Rust's ownership rules let the compiler check memory safety without a garbage collector.",
    ]
    .map(String::from)
    .to_vec();
    let photos: Vec<std::path::PathBuf> = PHOTOS
        .iter()
        .map(|p| p.path().expect("the sample photos can be fetched"))
        .collect();
    // `TANDEM_BENCH_ONLY=Lite0` measures only the models whose name contains it.
    let only = std::env::var("TANDEM_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| name.contains(only.as_str());
    println!("model, batch: items/second on the CPU (flex), {seconds} s per figure");
    for batch in [1, 16].into_iter().filter(|_| wanted("all-MiniLM-L6-v2")) {
        let m = figures(&MiniLm::new().max_batch(batch), &sentences, batch, run);
        println!("all-MiniLM-L6-v2, batch {batch}: sentences {m}");
    }
    for (name, handler) in [
        ("EfficientNet-Lite0", EfficientNetLite::lite0()),
        ("EfficientNet-Lite2", EfficientNetLite::lite2()),
    ] {
        for batch in [1, 16].into_iter().filter(|_| wanted(name)) {
            let handler = handler.clone().max_batch(batch);
            let m = figures(&handler, &photos, batch, run);
            println!("{name}, batch {batch}: images {m}");
        }
    }
    for batch in [1, 16].into_iter().filter(|_| wanted("MTCNN cascade")) {
        let m = figures(&Mtcnn::new().max_batch(batch), &photos, batch, run);
        println!("MTCNN cascade, batch {batch}: images {m}");
    }
    captioning(&photos, run, &wanted);
    matmuls(run, &wanted);
}

/// MiniLM's matrix products alone, on flex: the attention projections and the feed-forward
/// layers at batch 16 (16 sentences padded to 19 tokens: 304 rows) and batch 1 (the first
/// sentence, 8 tokens), in GFLOP/s; `anchors.py` times `torch.matmul` on the same shapes.
/// `TANDEM_BENCH_ONLY=matmul` for these alone; not part of a plain run's models.
fn matmuls(run: Duration, wanted: &dyn Fn(&str) -> bool) {
    if !wanted("matmul") || !std::env::var("TANDEM_BENCH_ONLY").is_ok_and(|o| !o.is_empty()) {
        return;
    }
    let (device, _) = tandem_models::device::select(DeviceChoice::Cpu).expect("the CPU");
    for [m, k, n] in [
        [304, 384, 384],
        [304, 384, 1536],
        [304, 1536, 384],
        [8, 384, 384],
        [8, 384, 1536],
    ] {
        let a = Tensor::<2>::random([m, k], Distribution::Default, &device);
        let b = Tensor::<2>::random([k, n], Distribution::Default, &device);
        let per_second = items_per_second(1, run, || {
            std::hint::black_box(a.clone().matmul(b.clone()).into_data());
        });
        let gflops = per_second * 2.0 * (m * k * n) as f64 / 1e9;
        println!("matmul {m}x{k}x{n}: {gflops:.1} GFLOP/s");
    }
}

/// BLIP writing 3 candidates per image (beam search and nucleus sampling, 20 new tokens at
/// most) and CLIP scoring 3 captions per image, on the checkpoints in
/// `$TANDEM_CAPTION_REFERENCE/{blip,clip}` (the full-size folders
/// `models/tests/reference/captioning.py --full DIR` writes; no pretrained BLIP or CLIP reaches
/// this machine). Random weights rarely end a caption early, so captioning runs to the 20-token
/// limit: a pretrained model's shorter captions would be faster.
fn captioning(photos: &[std::path::PathBuf], run: Duration, wanted: &dyn Fn(&str) -> bool) {
    let Some(dir) = std::env::var_os("TANDEM_CAPTION_REFERENCE") else {
        println!("BLIP and CLIP: not measured (set TANDEM_CAPTION_REFERENCE to the folder of `captioning.py --full`)");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    for (name, method) in [("beam 3", true), ("nucleus", false)] {
        let label = format!("BLIP captioning k=3 {name}");
        for batch in [1, 8].into_iter().filter(|_| wanted(&label)) {
            let blip = BlipCaptioner::new(dir.join("blip"))
                .candidates(3)
                .max_new_tokens(20);
            let blip = if method {
                blip.beam(3)
            } else {
                blip.nucleus(0.9, 1.0, 0)
            };
            let m = figures(&blip.max_batch(batch), photos, batch, run);
            println!("{label}, batch {batch}: images {m}");
        }
    }
    let captions: Vec<String> = [
        "a picture of a cat sitting on a chair",
        "a picture of an astronaut in a space suit",
        "a picture of a cup of coffee on a table",
    ]
    .map(String::from)
    .to_vec();
    let queries: Vec<ClipQuery> = photos
        .iter()
        .map(|image| ClipQuery {
            image: image.clone(),
            captions: captions.clone(),
        })
        .collect();
    for batch in [1, 8].into_iter().filter(|_| wanted("CLIP scoring")) {
        let clip = ClipRanker::new(dir.join("clip")).max_batch(batch);
        let m = figures(&clip, &queries, batch, run);
        println!("CLIP scoring 3 captions, batch {batch}: images {m}");
    }
}
