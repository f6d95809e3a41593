//! `read -> run_inference(model) -> write` against a bare loop calling the same Burn model at the
//! same batch size on the same device.
//!
//! Input: JSON lines `{"id": i, "x": [..]}`, written once to a temporary file (read from the page
//! cache). Output: one JSON line per input, `{"example": .., "inference": [..], "model_id": ..}`.
//!
//! - `pipeline`: `read(JsonLines) -> run_inference(handler) -> write(JsonLines)`, the handler's
//!   model cloned from one built up front (so both variants run the same weights and no load time
//!   is measured beyond the clone).
//! - `bare_loop`: one thread: `read_line`, `serde_json::from_str`, collect `batch` inputs, one
//!   forward pass, `serde_json::to_writer` per result, the same output.
//!
//! Two models: `tiny` (the 4-8-3 MLP of `tandem_models::tiny`, microseconds per batch: the
//! pipeline's own cost shows) and `mlp` (256-1024-1024-16, milliseconds per batch: a model that
//! dominates, as a served one does). Both variants' outputs are checked equal before timing.
//!
//! `cargo bench -p tandem-models --bench inference` (`TANDEM_BENCH_RUNS` rounds, default 10;
//! `TANDEM_BENCH_MODEL_BATCH` the model's batch size, default 32; `TANDEM_BENCH_DEVICE=gpu|cpu|auto`,
//! default cpu; `TANDEM_BENCH_ALLOC=mimalloc` runs both variants on mimalloc instead of the
//! system's allocator). `cargo test --benches` runs a quick check.

#[path = "../../benches/common/mod.rs"]
mod common;

/// The allocator both variants run on, chosen once, before the first allocation, by
/// `TANDEM_BENCH_ALLOC` (read with `getenv`, which does not allocate): the system's (glibc) by
/// default, or mimalloc. A pipeline frees on one thread what another allocated (the input parsed
/// by the source, freed after the writer wrote it), which glibc's per-thread caches handle poorly
/// and mimalloc well; the bare loop allocates and frees on one thread.
struct Chosen;

static MIMALLOC: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

impl Chosen {
    fn mimalloc() -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        match MIMALLOC.load(Relaxed) {
            0 => {
                // SAFETY: `getenv` with a NUL-terminated name; its result is read before any
                // thread could change the environment (the first allocation of the process).
                let chosen = unsafe {
                    let value = libc::getenv(c"TANDEM_BENCH_ALLOC".as_ptr());
                    !value.is_null() && std::ffi::CStr::from_ptr(value) == c"mimalloc"
                };
                MIMALLOC.store(if chosen { 2 } else { 1 }, Relaxed);
                chosen
            }
            chosen => chosen == 2,
        }
    }
}

// SAFETY: every call goes to the one allocator chosen before the first allocation.
unsafe impl std::alloc::GlobalAlloc for Chosen {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if Self::mimalloc() {
            mimalloc::MiMalloc.alloc(layout)
        } else {
            std::alloc::System.alloc(layout)
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        if Self::mimalloc() {
            mimalloc::MiMalloc.dealloc(ptr, layout)
        } else {
            std::alloc::System.dealloc(ptr, layout)
        }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if Self::mimalloc() {
            mimalloc::MiMalloc.alloc_zeroed(layout)
        } else {
            std::alloc::System.alloc_zeroed(layout)
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        if Self::mimalloc() {
            mimalloc::MiMalloc.realloc(ptr, layout, size)
        } else {
            std::alloc::System.realloc(ptr, layout, size)
        }
    }
}

#[global_allocator]
static ALLOC: Chosen = Chosen;

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use burn::nn::{Linear, LinearConfig};
use burn::prelude::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use tandem::inference::{
    Batching, DeviceChoice, DeviceRequest, Loaded, ModelHandler, PredictionResult,
};
use tandem::prelude::*;
use tandem_models::tiny::TinyMlp;

#[derive(Clone, Debug, Deserialize, Serialize)]
struct Request {
    id: u64,
    x: Vec<f32>,
}

#[derive(Module, Debug)]
struct Mlp {
    a: Linear,
    b: Linear,
    c: Linear,
}

impl Mlp {
    fn new(device: &Device) -> Self {
        Self {
            a: LinearConfig::new(256, 1024).init(device),
            b: LinearConfig::new(1024, 1024).init(device),
            c: LinearConfig::new(1024, 16).init(device),
        }
    }
}

#[derive(Clone, Debug)]
enum Net {
    Tiny(TinyMlp),
    Mlp(Mlp),
}

impl Net {
    fn width(&self) -> usize {
        match self {
            Net::Tiny(_) => tandem_models::tiny::INPUTS,
            Net::Mlp(_) => 256,
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Net::Tiny(m) => m.forward(x),
            Net::Mlp(m) => m.c.forward(relu(m.b.forward(relu(m.a.forward(x))))),
        }
    }

    /// One forward pass over a batch of inputs: the outputs, one row per input.
    fn run(&self, device: &Device, batch: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        let n = batch.len();
        let flat: Vec<f32> = batch.into_iter().flatten().collect();
        let x = Tensor::<2>::from_data(TensorData::new(flat, [n, self.width()]), device);
        let out = self.forward(x).try_into_vec_as::<f32>().expect("read back");
        let classes = out.len() / n;
        out.chunks(classes).map(<[f32]>::to_vec).collect()
    }
}

#[derive(Clone)]
struct Handler {
    net: Net,
    device: Device,
    device_name: String,
    batch: usize,
}

impl ModelHandler for Handler {
    type Input = Request;
    type Prepared = Vec<f32>;
    type Inference = Vec<f32>;
    type Model = Net;

    fn name(&self) -> String {
        "bench".into()
    }

    fn batching(&self) -> Batching {
        Batching {
            max_batch: self.batch,
            ..Batching::default()
        }
    }

    fn load(&self, _: DeviceRequest) -> Result<Loaded<Net>, String> {
        Ok(Loaded::new(self.net.clone(), &self.device_name, "bench"))
    }

    fn prepare(&self, input: &Request) -> Result<Vec<f32>, String> {
        if input.x.len() == self.net.width() {
            Ok(input.x.clone())
        } else {
            Err(format!(
                "{} features, not {}",
                input.x.len(),
                self.net.width()
            ))
        }
    }

    fn infer(&self, net: &mut Net, batch: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>, String> {
        Ok(net.run(&self.device, batch))
    }
}

struct Args {
    input: PathBuf,
    output: PathBuf,
    handler: Handler,
}

pipeline! {
    Serve(args: Args) {
        read(JsonLines::<Request>::open(&args.input))
            -> run_inference(args.handler.clone())
            -> write(JsonLines::create(&args.output));
    }
}

fn pipeline(args: &Args) {
    let mut config = common::run_config();
    config.device = DeviceChoice::Cpu;
    let summary = Serve::run_blocking(args, &config).expect("the pipeline runs");
    assert!(summary.dead_letters.is_empty());
}

fn bare_loop(args: &Args) {
    let handler = &args.handler;
    let mut reader = BufReader::new(File::open(&args.input).unwrap());
    let mut writer = BufWriter::new(File::create(&args.output).unwrap());
    let model_id: std::sync::Arc<str> = "bench".into();
    let mut examples = Vec::with_capacity(handler.batch);
    let mut line = String::new();
    let flush = |examples: &mut Vec<Request>, writer: &mut BufWriter<File>| {
        let batch = examples.iter().map(|r| r.x.clone()).collect();
        let outputs = handler.net.run(&handler.device, batch);
        for (example, inference) in examples.drain(..).zip(outputs) {
            let result = PredictionResult {
                example,
                inference,
                model_id: model_id.clone(),
            };
            serde_json::to_writer(&mut *writer, &result).unwrap();
            writer.write_all(b"\n").unwrap();
        }
    };
    while reader.read_line(&mut line).unwrap() > 0 {
        examples.push(serde_json::from_str::<Request>(&line).unwrap());
        line.clear();
        if examples.len() == handler.batch {
            flush(&mut examples, &mut writer);
        }
    }
    if !examples.is_empty() {
        flush(&mut examples, &mut writer);
    }
    writer.flush().unwrap();
}

fn write_input(path: &Path, rows: usize, width: usize) {
    let mut out = BufWriter::new(File::create(path).unwrap());
    for i in 0..rows {
        let x: Vec<f32> = (0..width)
            .map(|j| (((i * 31 + j * 7) % 1000) as f32 / 500.0) - 1.0)
            .collect();
        serde_json::to_writer(&mut out, &Request { id: i as u64, x }).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
}

fn main() {
    let (full, runs) = common::bench_mode(10);
    let allocator = if Chosen::mimalloc() {
        "mimalloc"
    } else {
        "the system's (glibc)"
    };
    println!("allocator: {allocator}");
    let choice = match std::env::var("TANDEM_BENCH_DEVICE").as_deref() {
        Ok("gpu") => DeviceChoice::Gpu,
        Ok("auto") => DeviceChoice::Auto,
        _ => DeviceChoice::Cpu,
    };
    let (device, device_name) = tandem_models::device::select(choice).expect("a device");
    let dir = tempfile::tempdir().unwrap();
    let batch: usize = std::env::var("TANDEM_BENCH_MODEL_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(32);
    let cases: [(&str, Net, usize); 2] = [
        ("tiny", Net::Tiny(TinyMlp::new(&device)), 200_000),
        ("mlp", Net::Mlp(Mlp::new(&device)), 4_096),
    ];
    for (name, net, rows) in cases {
        let rows = if full { rows } else { rows / 50 };
        let input = dir.path().join(format!("{name}.jsonl"));
        write_input(&input, rows, net.width());
        let handler = Handler {
            net,
            device: device.clone(),
            device_name: device_name.clone(),
            batch,
        };
        let piped = Args {
            input: input.clone(),
            output: dir.path().join(format!("{name}-pipeline.jsonl")),
            handler: handler.clone(),
        };
        let bare = Args {
            input,
            output: dir.path().join(format!("{name}-bare.jsonl")),
            handler,
        };
        pipeline(&piped);
        bare_loop(&bare);
        let (a, b) = (
            std::fs::read(&piped.output).unwrap(),
            std::fs::read(&bare.output).unwrap(),
        );
        assert!(
            a == b,
            "{name}: the pipeline's output differs from the bare loop's"
        );
        println!("{name}: {rows} rows, batch {batch}, on {device_name}: identical outputs");
        common::interleaved(
            &format!("read -> run_inference({name}) -> write"),
            runs,
            rows as u64,
            &mut [
                ("bare_loop", &mut || bare_loop(&bare)),
                ("pipeline", &mut || pipeline(&piped)),
            ],
        );
    }
}
