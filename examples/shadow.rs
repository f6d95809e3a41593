//! Shadow deployment: EfficientNet-Lite0 serves every request; EfficientNet-Lite2, the candidate,
//! sees a copy of each and its answers are only compared, never served. At the end: how often
//! the two agree, and the latency percentiles of each.
//!
//! ```text
//! cargo run --example shadow                     # 48 requests at 4/s about the sample photos
//! cargo run --example shadow -- --no-shadow      # the served path alone, to compare
//! cargo run --example shadow -- --rate 8 --requests 200 photos/
//! ```
//!
//! Requests arrive at a steady `--rate` (an open loop: a request's latency counts from when it
//! was due, so a served path that falls behind shows it). The copy to the shadow must not hold
//! up the served path:
//! - the shadow does all its work on its own model replica's thread, decoding and resizing the
//!   image included (`Shadowed`), so the thread that reads requests and prepares them for the
//!   served model only clones the request for it;
//! - a request is copied to the shadow only while it holds fewer than `--shadow-queue`
//!   requests, so its queue never fills and it never pushes back on the reading thread; a
//!   request not copied is counted (the `filter` stage's "filtered" in the summary, "not copied"
//!   in the report).
//!
//! What the shadow still costs the served path is its share of the device. On the CPU its share
//! is capped: it computes on a thread pool of its own of `--shadow-threads` threads (1 by
//! default), while the served model has every core. Compare the served row with and without
//! `--no-shadow` to see what is left of that cost.
//!
//! Writes the served answers to `responses.jsonl` and the report to `shadow-report.json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tandem::inference::{Batching, DeviceRequest, Loaded, ModelHandler, Serving};
use tandem::prelude::*;
use tandem_examples::vision::{percentile, AtEnd, Carry, ImageFiles};
use tandem_models::efficientnet::{Class, Classification, EfficientNetLite};

#[derive(Debug, clap::Args)]
pub struct ShadowArgs {
    /// Images the requests ask about, in turn (files, folders); the sample photos when none is
    /// given.
    pub images: Vec<PathBuf>,
    /// How many requests.
    #[arg(long, default_value_t = 48)]
    pub requests: usize,
    /// Requests per second, evenly spaced; 0 sends them all at once (a backlog, not a service).
    #[arg(long, default_value_t = 4.0)]
    pub rate: f64,
    /// Serve without copying requests to the shadow (its model still loads, but sees nothing).
    #[arg(long)]
    pub no_shadow: bool,
    /// The most requests the shadow holds at once (waiting or running); while it holds that
    /// many, requests are not copied to it.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub shadow_queue: u32,
    /// CPU threads the shadow's model may compute on (its own pool; 0: share every core with the
    /// served model). A GPU is shared by queueing, so this does not apply there.
    #[arg(long, default_value_t = 1)]
    pub shadow_threads: usize,
    /// Where the served answers go, one JSON object per request.
    #[arg(long, default_value = "responses.jsonl")]
    pub responses: PathBuf,
    /// Where the report goes (JSON).
    #[arg(long, default_value = "shadow-report.json")]
    pub report: PathBuf,
    #[arg(skip)]
    pub traffic: Arc<Traffic>,
}

/// The request clock and the shadow's admission count, shared by the stages of one run.
#[derive(Debug, Default)]
pub struct Traffic {
    start: OnceLock<Instant>,
    next_id: AtomicU64,
    shadow_holds: AtomicUsize,
    not_copied: AtomicU64,
}

/// A request's number and when it was due.
#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    pub id: u64,
    pub due: Instant,
}

/// A request: which image to classify, stamped.
pub type Request = (Stamp, PathBuf);

impl Traffic {
    /// Holds the request until it is due (request `n` at `n / rate` seconds after the first) and
    /// stamps it with that time; a request that comes late is stamped with when it was due.
    fn arrive(&self, image: PathBuf, rate: f64) -> Request {
        let id = self.next_id.fetch_add(1, SeqCst);
        let start = *self.start.get_or_init(Instant::now);
        let due = if rate > 0.0 {
            start + Duration::from_secs_f64(id as f64 / rate)
        } else {
            start
        };
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        (Stamp { id, due }, image)
    }

    /// Whether the shadow takes this request: yes while it holds fewer than `limit`.
    pub fn admit(&self, limit: usize) -> bool {
        let taken = self
            .shadow_holds
            .fetch_update(SeqCst, SeqCst, |n| (n < limit).then_some(n + 1))
            .is_ok();
        if !taken {
            self.not_copied.fetch_add(1, SeqCst);
        }
        taken
    }

    /// The shadow is done with `n` requests.
    pub fn release(&self, n: usize) {
        self.shadow_holds.fetch_sub(n, SeqCst);
    }

    /// Requests not copied to the shadow so far.
    pub fn not_copied(&self) -> u64 {
        self.not_copied.load(SeqCst)
    }
}

/// The shadow's handler: `H`, doing all its work on its own thread, pre-processing included (in
/// `infer`: the stage's front, on the thread that reads the requests, only clones the request),
/// and giving the requests it holds back to [`Traffic`] as it finishes them (answered, failed or
/// panicked), so a shadow that fails keeps getting copies.
pub struct Shadowed<H> {
    inner: H,
    traffic: Arc<Traffic>,
    /// The shadow's own CPU threads (None: rayon's global pool, shared with the served model).
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl<H> Shadowed<H> {
    pub fn new(inner: H, traffic: Arc<Traffic>) -> Self {
        Self {
            inner,
            traffic,
            pool: None,
        }
    }

    /// Caps the shadow's CPU share: its model computes on a pool of `threads` threads of its own
    /// (Burn's CPU backend parallelises with rayon, in the pool it is called from); 0 shares
    /// rayon's global pool, and so does a pool that cannot be started (with a warning).
    pub fn threads(mut self, threads: usize) -> Self {
        self.pool = (threads > 0)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("shadow-cpu-{i}"))
                    .build()
                    .map_err(|e| {
                        tracing::warn!("the shadow shares every core: its {threads} threads could not start ({e})")
                    })
                    .ok()
            })
            .flatten()
            .map(Arc::new);
        self
    }
}

/// Gives `n` requests back when dropped, also when `infer` fails or panics.
struct Release<'a>(&'a Traffic, usize);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}

impl<H> ModelHandler for Shadowed<H>
where
    H: ModelHandler + Send + Sync,
    H::Input: Clone + Send + 'static,
{
    type Input = H::Input;
    /// Not prepared yet: that happens on the shadow's thread.
    type Prepared = H::Input;
    type Inference = H::Inference;
    type Model = H::Model;

    fn name(&self) -> String {
        self.inner.name()
    }

    fn batching(&self) -> Batching {
        self.inner.batching()
    }

    fn serving(&self) -> Serving {
        self.inner.serving()
    }

    fn load(&self, device: DeviceRequest) -> Result<Loaded<H::Model>, String> {
        self.inner.load(device)
    }

    fn prepare(&self, input: &H::Input) -> Result<H::Input, String> {
        Ok(input.clone())
    }

    fn infer(
        &self,
        model: &mut H::Model,
        batch: Vec<H::Input>,
    ) -> Result<Vec<H::Inference>, String> {
        let _release = Release(&self.traffic, batch.len());
        let mut work = move || {
            let prepared = batch
                .iter()
                .map(|input| self.inner.prepare(input))
                .collect::<Result<Vec<_>, _>>()?;
            self.inner.infer(model, prepared)
        };
        match &self.pool {
            Some(pool) => pool.install(work),
            None => work(),
        }
    }
}

/// Which model answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    Served,
    Shadow,
}

/// A model's answer to a request, with its latency (from when the request was due).
#[derive(Clone, Debug)]
pub struct Answer {
    pub arm: Arm,
    pub id: u64,
    pub image: PathBuf,
    pub model_id: Arc<str>,
    pub top: Vec<Class>,
    pub latency: Duration,
}

type Classified = PredictionResult<Request, Classification>;

impl Answer {
    fn new(arm: Arm, p: Classified) -> Self {
        let ((stamp, image), inference) = (p.example, p.inference);
        Self {
            arm,
            id: stamp.id,
            image,
            model_id: p.model_id,
            top: inference.top,
            latency: stamp.due.elapsed(),
        }
    }
}

/// What the caller gets back: a line of `responses.jsonl`.
#[derive(Debug, Serialize)]
pub struct Response {
    pub id: u64,
    pub image: PathBuf,
    pub label: String,
    pub probability: f32,
    pub model_id: String,
    pub latency_ms: f64,
}

impl From<Answer> for Response {
    fn from(a: Answer) -> Self {
        let best = a.top.into_iter().next();
        Self {
            id: a.id,
            image: a.image,
            label: best.as_ref().map(|c| c.label.clone()).unwrap_or_default(),
            probability: best.map_or(0.0, |c| c.probability),
            model_id: a.model_id.to_string(),
            latency_ms: a.latency.as_secs_f64() * 1e3,
        }
    }
}

/// One model's latencies, in milliseconds (nearest-rank percentiles over its answers).
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub arm: Arm,
    pub model_id: String,
    pub answered: usize,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

/// A request the two models answered differently.
#[derive(Clone, Debug, Serialize)]
pub struct Disagreement {
    pub id: u64,
    pub image: PathBuf,
    pub served: String,
    pub served_probability: f32,
    pub shadow: String,
    pub shadow_probability: f32,
}

/// `shadow-report.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub requests: usize,
    pub rate: f64,
    pub shadow_enabled: bool,
    /// Requests not copied to the shadow because it held `--shadow-queue` already.
    pub not_copied: u64,
    /// Requests both models answered.
    pub compared: usize,
    /// Of those, how many got the same top-1 class.
    pub agreed: usize,
    /// `agreed / compared`.
    pub agreement: Option<f64>,
    /// Of those, how many had the served top-1 class among the shadow's top 5.
    pub served_in_shadow_top5: usize,
    pub latency_ms: Vec<Latency>,
    pub disagreements: Vec<Disagreement>,
}

fn latency(arm: Arm, answers: &[&Answer]) -> Latency {
    let mut ms: Vec<f64> = answers
        .iter()
        .map(|a| a.latency.as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    let mean = (!ms.is_empty()).then(|| ms.iter().sum::<f64>() / ms.len() as f64);
    Latency {
        arm,
        model_id: answers
            .first()
            .map_or_else(|| "-".into(), |a| a.model_id.to_string()),
        answered: ms.len(),
        p50: percentile(&ms, 50.0),
        p90: percentile(&ms, 90.0),
        p99: percentile(&ms, 99.0),
        max: ms.last().copied(),
        mean,
    }
}

/// Joins the two arms' answers by request and measures them.
pub fn compare(
    answers: &[Answer],
    requests: usize,
    rate: f64,
    enabled: bool,
    not_copied: u64,
) -> Report {
    let served: Vec<&Answer> = answers.iter().filter(|a| a.arm == Arm::Served).collect();
    let shadow: Vec<&Answer> = answers.iter().filter(|a| a.arm == Arm::Shadow).collect();
    let by_id: std::collections::HashMap<u64, &Answer> =
        shadow.iter().map(|a| (a.id, *a)).collect();
    let (mut compared, mut agreed, mut in_top5) = (0, 0, 0);
    let mut disagreements = Vec::new();
    for s in &served {
        let Some(h) = by_id.get(&s.id) else { continue };
        let (Some(a), Some(b)) = (s.top.first(), h.top.first()) else {
            continue;
        };
        compared += 1;
        if a.index == b.index {
            agreed += 1;
        } else {
            disagreements.push(Disagreement {
                id: s.id,
                image: s.image.clone(),
                served: a.label.clone(),
                served_probability: a.probability,
                shadow: b.label.clone(),
                shadow_probability: b.probability,
            });
        }
        if h.top.iter().take(5).any(|c| c.index == a.index) {
            in_top5 += 1;
        }
    }
    disagreements.sort_by_key(|d| d.id);
    Report {
        requests,
        rate,
        shadow_enabled: enabled,
        not_copied,
        compared,
        agreed,
        agreement: (compared > 0).then(|| agreed as f64 / compared as f64),
        served_in_shadow_top5: in_top5,
        latency_ms: vec![latency(Arm::Served, &served), latency(Arm::Shadow, &shadow)],
        disagreements,
    }
}

fn print(report: &Report, path: &Path) {
    let rate = if report.rate > 0.0 {
        format!("{}/s", report.rate)
    } else {
        "all at once".into()
    };
    println!(
        "shadow deployment: {} requests at {rate}; efficientnet-lite0 serves, efficientnet-lite2 shadows",
        report.requests
    );
    let shadowed = report.latency_ms[1].answered;
    if report.shadow_enabled {
        println!(
            "  the shadow answered {shadowed} of {} requests ({} not copied to it: it held --shadow-queue already)",
            report.requests, report.not_copied
        );
    } else {
        println!(
            "  --no-shadow: the shadow saw no request (the served row is the served path alone)"
        );
    }
    if let Some(agreement) = report.agreement {
        println!(
            "  agreement on the top-1 class: {} of {} ({:.1}%); served top-1 in the shadow's top 5: {} of {}",
            report.agreed,
            report.compared,
            agreement * 100.0,
            report.served_in_shadow_top5,
            report.compared
        );
    }
    println!("  latency from when a request was due to its answer, ms (nearest rank):");
    println!(
        "    {:<7} {:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "arm", "model", "answered", "p50", "p90", "p99", "max", "mean"
    );
    let ms = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
    for l in &report.latency_ms {
        let arm = match l.arm {
            Arm::Served => "served",
            Arm::Shadow => "shadow",
        };
        println!(
            "    {arm:<7} {:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            l.model_id,
            l.answered,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.max),
            ms(l.mean)
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    let firsts: Vec<&Disagreement> = report
        .disagreements
        .iter()
        .filter(|d| seen.insert(d.image.clone()))
        .collect();
    if !firsts.is_empty() {
        println!(
            "  where they disagree ({} requests; first per image):",
            report.disagreements.len()
        );
        for d in firsts {
            let name = d.image.file_name().unwrap_or_default().to_string_lossy();
            println!(
                "    {name:<22} served {:?} ({:.2}), shadow {:?} ({:.2})",
                d.served, d.served_probability, d.shadow, d.shadow_probability
            );
        }
    }
    println!("  report written to {}", path.display());
}

/// What the run ends with: compare the answers, write the report, print it.
fn report_to(args: &ShadowArgs) -> impl FnOnce(Vec<Answer>) -> Result<(), String> + Send + 'static {
    let (requests, rate, enabled) = (args.requests, args.rate, !args.no_shadow);
    let (traffic, path) = (args.traffic.clone(), args.report.clone());
    move |answers| {
        let not_copied = if enabled { traffic.not_copied() } else { 0 };
        let report = compare(&answers, requests, rate, enabled, not_copied);
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(&path, json + "\n")
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
        print(&report, &path);
        Ok(())
    }
}

pipeline! {
    /// Lite0 serves every request, Lite2 sees a copy; agreement and latency per model.
    pub Shadow(args: ShadowArgs) {
        requests = read(ImageFiles::new(&args.images).cycle(args.requests))
            -> map(|image: PathBuf| args.traffic.arrive(image, args.rate));
        served = requests
            -> run_inference(Carry::<Stamp, _>::new(EfficientNetLite::lite0().max_batch(1)))
            -> map(|p: Classified| Answer::new(Arm::Served, p));
        shadowed = requests
            -> filter(|_: &Request| !args.no_shadow && args.traffic.admit(args.shadow_queue as usize))
            -> run_inference(Shadowed::new(
                Carry::<Stamp, _>::new(EfficientNetLite::lite2().max_batch(1)),
                args.traffic.clone(),
            ).threads(args.shadow_threads))
            -> map(|p: Classified| Answer::new(Arm::Shadow, p));
        served -> map(Response::from) -> write(JsonLines::create(&args.responses));
        merge(served, shadowed) -> write(AtEnd::new("the shadow report", report_to(args)));
    }
}

fn main() -> ExitCode {
    Shadow::main()
}
