//! The two ad rankers, trained here with Burn's autodiff on the simulated impression log, saved as
//! safetensors, and served by the [`Ranker`] model handler.
//!
//! - the **champion**: a logistic model on the raw features (no crosses);
//! - the **challenger**: an MLP (one hidden layer of 32 ReLU units) on the raw features and
//!   their crosses (interest × category, age × target age).
//!
//! Both output a click probability; a ranker serves the candidate it scores highest.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Param;
use burn::nn::Linear;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::{log_sigmoid, relu, sigmoid};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tandem::inference::{Batching, DeviceRequest, Loaded, ModelHandler};

use super::sim::{self, AdRequest, Impression, CROSSED_FEATURES, RAW_FEATURES};

/// Hidden units of the challenger's MLP.
pub const HIDDEN: usize = 32;

/// Bumped when the features or the architectures change, so that old weights are retrained.
const FORMAT: u32 = 1;

/// Which ranker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RankerKind {
    /// Logistic regression on the raw features.
    Champion,
    /// An MLP on the raw features and their crosses.
    Challenger,
}

impl RankerKind {
    pub const ALL: [RankerKind; 2] = [RankerKind::Champion, RankerKind::Challenger];

    /// The model's name, for logs, the summary and the report.
    pub fn model_name(self) -> &'static str {
        match self {
            Self::Champion => "champion-logistic",
            Self::Challenger => "challenger-mlp",
        }
    }

    pub fn features(self) -> usize {
        match self {
            Self::Champion => RAW_FEATURES,
            Self::Challenger => CROSSED_FEATURES,
        }
    }

    /// Appends the features this ranker reads for a user and an ad.
    pub fn encode(self, user: &sim::User, ad: &sim::Ad, out: &mut Vec<f32>) {
        match self {
            Self::Champion => sim::raw_features(user, ad, out),
            Self::Challenger => sim::crossed_features(user, ad, out),
        }
    }

    /// The weights file in a weights folder.
    pub fn weights_in(self, dir: &Path) -> PathBuf {
        dir.join(match self {
            Self::Champion => "champion.safetensors",
            Self::Challenger => "challenger.safetensors",
        })
    }
}

/// Where the rankers' weights go unless told otherwise: `$TANDEM_HOME/rankers`.
pub fn default_weights_dir() -> PathBuf {
    tandem_models::fetch::home().join("rankers")
}

/// Glorot-uniform weights from our own seeded generator (Burn's initialisers draw from a global
/// generator, which other threads may also draw from), zero biases.
fn linear(inputs: usize, outputs: usize, rng: &mut StdRng, device: &Device) -> Linear {
    let bound = (6.0 / (inputs + outputs) as f32).sqrt();
    let w: Vec<f32> = (0..inputs * outputs)
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    Linear {
        weight: Param::from_tensor(Tensor::<2>::from_data(
            TensorData::new(w, [inputs, outputs]),
            device,
        )),
        bias: Some(Param::from_tensor(Tensor::<1>::zeros([outputs], device))),
    }
}

/// The champion's network: one linear layer to a logit.
#[derive(Module, Debug)]
pub struct Logistic {
    linear: Linear,
}

/// The challenger's network: linear, ReLU, linear to a logit.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Linear,
    output: Linear,
}

/// What training needs of a network: logits `[n, 1]` for features `[n, f]`.
trait Scorer: Module {
    fn logits(&self, x: Tensor<2>) -> Tensor<2>;
}

impl Scorer for Logistic {
    fn logits(&self, x: Tensor<2>) -> Tensor<2> {
        self.linear.forward(x)
    }
}

impl Scorer for Mlp {
    fn logits(&self, x: Tensor<2>) -> Tensor<2> {
        self.output.forward(relu(self.hidden.forward(x)))
    }
}

/// A loaded ranker.
#[derive(Debug)]
pub enum RankerNet {
    Logistic(Logistic),
    Mlp(Mlp),
}

impl RankerNet {
    /// A fresh network with seeded random weights.
    fn init(kind: RankerKind, seed: u64, device: &Device) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        match kind {
            RankerKind::Champion => Self::Logistic(Logistic {
                linear: linear(RAW_FEATURES, 1, &mut rng, device),
            }),
            RankerKind::Challenger => Self::Mlp(Mlp {
                hidden: linear(CROSSED_FEATURES, HIDDEN, &mut rng, device),
                output: linear(HIDDEN, 1, &mut rng, device),
            }),
        }
    }

    /// Loads trained weights; every parameter must be in the file.
    pub fn load(kind: RankerKind, path: &Path, device: &Device) -> Result<Self, String> {
        let what = || format!("the {} weights `{}`", kind.model_name(), path.display());
        if !path.is_file() {
            return Err(format!(
                "{} do not exist: train them with `cargo run --example train_rankers`",
                what()
            ));
        }
        let mut net = Self::init(kind, 0, device);
        let mut store = SafetensorsStore::from_file(path);
        let result = match &mut net {
            Self::Logistic(m) => m.load_from(&mut store),
            Self::Mlp(m) => m.load_from(&mut store),
        }
        .map_err(|e| format!("{} could not be loaded: {e}", what()))?;
        tandem_models::weights::ensure_fits(&result, &what(), false).map_err(|e| e.to_string())?;
        Ok(net)
    }

    fn save(&self, kind: RankerKind, path: &Path) -> Result<(), String> {
        let mut store = SafetensorsStore::from_file(path)
            .overwrite(true)
            .metadata("tandem-ranker", kind.model_name())
            .metadata("trained-on", "a simulated impression log");
        match self {
            Self::Logistic(m) => m.valid().save_into(&mut store),
            Self::Mlp(m) => m.valid().save_into(&mut store),
        }
        .map_err(|e| format!("saving `{}` failed: {e}", path.display()))
    }

    /// Click probabilities `[n, 1]` for features `[n, f]`.
    pub fn probabilities(&self, x: Tensor<2>) -> Tensor<2> {
        sigmoid(match self {
            Self::Logistic(m) => m.logits(x),
            Self::Mlp(m) => m.logits(x),
        })
    }

    /// Click probabilities for rows of features, read back.
    pub fn predict(
        &self,
        features: Vec<f32>,
        width: usize,
        device: &Device,
    ) -> Result<Vec<f32>, String> {
        let rows = features.len() / width;
        let x = Tensor::<2>::from_data(TensorData::new(features, [rows, width]), device);
        self.probabilities(x)
            .try_into_vec_as::<f32>()
            .map_err(|e| format!("reading the scores back failed: {e:?}"))
    }
}

/// How the rankers are trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Rows of the simulated impression log to learn from.
    pub train_rows: usize,
    /// Rows of a second simulated log, for the validation log-loss.
    pub valid_rows: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub champion_learning_rate: f64,
    pub challenger_learning_rate: f64,
    /// Seed of the training log, the weights' initialisation and the shuffling.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            train_rows: 150_000,
            valid_rows: 30_000,
            epochs: 4,
            batch_size: 512,
            champion_learning_rate: 0.05,
            challenger_learning_rate: 0.01,
            seed: 2024,
        }
    }
}

/// What training did, saved beside the weights as `rankers.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub format: u32,
    pub config: TrainConfig,
    /// Clicks per impression in the training log (the ads shown at random).
    pub train_ctr: f64,
    /// Validation log-loss of each ranker.
    pub champion_log_loss: f64,
    pub challenger_log_loss: f64,
    /// Validation log-loss of the simulated click model itself (the best any ranker can do).
    pub true_model_log_loss: f64,
    /// Validation log-loss of predicting the training CTR for everything.
    pub constant_log_loss: f64,
    pub seconds: f64,
}

impl std::fmt::Display for TrainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "trained on {} rows of a simulated impression log (CTR {:.2}%), {} epochs, in {:.1}s",
            self.config.train_rows,
            100.0 * self.train_ctr,
            self.config.epochs,
            self.seconds
        )?;
        writeln!(
            f,
            "validation log-loss on {} simulated rows (lower is better):",
            self.config.valid_rows
        )?;
        writeln!(
            f,
            "  constant CTR                 {:.4}",
            self.constant_log_loss
        )?;
        writeln!(
            f,
            "  champion (logistic, raw)     {:.4}",
            self.champion_log_loss
        )?;
        writeln!(
            f,
            "  challenger (MLP, crosses)    {:.4}",
            self.challenger_log_loss
        )?;
        writeln!(
            f,
            "  the simulated click model    {:.4}",
            self.true_model_log_loss
        )
    }
}

/// Features `[rows * f]` and labels of an impression log, for a ranker.
fn encode_log(kind: RankerKind, log: &[Impression]) -> (Vec<f32>, Vec<f32>) {
    let mut x = Vec::with_capacity(log.len() * kind.features());
    let mut y = Vec::with_capacity(log.len());
    for row in log {
        let ad = &sim::ads()[row.ad_id as usize];
        kind.encode(&sim::user(row.user_id), ad, &mut x);
        y.push(f32::from(u8::from(row.clicked)));
    }
    (x, y)
}

/// Mean binary cross-entropy of probabilities against labels.
pub fn log_loss(p: impl IntoIterator<Item = f64>, y: &[f32]) -> f64 {
    let mut total = 0.0;
    let mut n = 0usize;
    for (p, &y) in p.into_iter().zip(y) {
        let p = p.clamp(1e-7, 1.0 - 1e-7);
        total -= if y > 0.5 { p.ln() } else { (1.0 - p).ln() };
        n += 1;
    }
    total / n.max(1) as f64
}

/// Minibatch Adam on the mean binary cross-entropy of the logits.
fn fit<M: Scorer>(
    mut model: M,
    (x, y): (&[f32], &[f32]),
    width: usize,
    learning_rate: f64,
    config: &TrainConfig,
    device: &Device,
) -> M {
    let mut optimizer = AdamConfig::new().init();
    let mut order: Vec<usize> = (0..y.len()).collect();
    let mut rng = StdRng::seed_from_u64(sim::mix(config.seed ^ 0x5_4c0ff1e));
    for epoch in 0..config.epochs {
        order.shuffle(&mut rng);
        // A step down for the last epoch settles the weights.
        let lr = if epoch + 1 == config.epochs && config.epochs > 1 {
            learning_rate * 0.3
        } else {
            learning_rate
        };
        for batch in order.chunks(config.batch_size) {
            let mut xb = Vec::with_capacity(batch.len() * width);
            let mut yb = Vec::with_capacity(batch.len());
            for &i in batch {
                xb.extend_from_slice(&x[i * width..(i + 1) * width]);
                yb.push(y[i]);
            }
            let n = batch.len();
            let xb = Tensor::<2>::from_data(TensorData::new(xb, [n, width]), device);
            let yb = Tensor::<2>::from_data(TensorData::new(yb, [n, 1]), device);
            let z = model.logits(xb);
            // -[y log σ(z) + (1-y) log(1-σ(z))] = (1-y) z - log σ(z)
            let loss = ((yb.neg() + 1.0) * z.clone() - log_sigmoid(z)).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
        }
    }
    model
}

fn validation_loss(net: &RankerNet, kind: RankerKind, x: &[f32], y: &[f32]) -> Result<f64, String> {
    let device = Device::flex();
    let width = kind.features();
    let mut p = Vec::with_capacity(y.len());
    for chunk in x.chunks(8192 * width) {
        p.extend(net.predict(chunk.to_vec(), width, &device)?);
    }
    Ok(log_loss(p.into_iter().map(f64::from), y))
}

/// Trains both rankers on a fresh simulated impression log (on the CPU, with Burn's autodiff) and
/// saves them, with `rankers.json`, into `dir`.
pub fn train(config: &TrainConfig, dir: &Path) -> Result<TrainReport, String> {
    let started = Instant::now();
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the weights folder `{}`: {e}", dir.display()))?;
    let train_log = sim::impression_log(config.train_rows, config.seed);
    let valid_log = sim::impression_log(config.valid_rows, sim::mix(config.seed ^ 0x7a11d));
    let train_ctr =
        train_log.iter().filter(|r| r.clicked).count() as f64 / train_log.len().max(1) as f64;
    let valid_y: Vec<f32> = valid_log
        .iter()
        .map(|r| f32::from(u8::from(r.clicked)))
        .collect();
    let device = Device::flex().autodiff();
    let mut losses = [0.0; 2];
    for (i, kind) in RankerKind::ALL.into_iter().enumerate() {
        let (x, y) = encode_log(kind, &train_log);
        let width = kind.features();
        let seed = sim::mix(config.seed ^ i as u64);
        let net = match RankerNet::init(kind, seed, &device) {
            RankerNet::Logistic(m) => RankerNet::Logistic(fit(
                m,
                (&x, &y),
                width,
                config.champion_learning_rate,
                config,
                &device,
            )),
            RankerNet::Mlp(m) => RankerNet::Mlp(fit(
                m,
                (&x, &y),
                width,
                config.challenger_learning_rate,
                config,
                &device,
            )),
        };
        net.save(kind, &kind.weights_in(dir))?;
        // Validate what was saved, as the pipeline will load it.
        let saved = RankerNet::load(kind, &kind.weights_in(dir), &Device::flex())?;
        let (vx, _) = encode_log(kind, &valid_log);
        losses[i] = validation_loss(&saved, kind, &vx, &valid_y)?;
    }
    let truth = valid_log
        .iter()
        .map(|r| sim::click_probability(&sim::user(r.user_id), &sim::ads()[r.ad_id as usize]));
    let report = TrainReport {
        format: FORMAT,
        config: config.clone(),
        train_ctr,
        champion_log_loss: losses[0],
        challenger_log_loss: losses[1],
        true_model_log_loss: log_loss(truth, &valid_y),
        constant_log_loss: log_loss(std::iter::repeat(train_ctr), &valid_y),
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&report).expect("a report serialises");
    std::fs::write(dir.join("rankers.json"), json)
        .map_err(|e| format!("cannot write `{}`: {e}", dir.join("rankers.json").display()))?;
    Ok(report)
}

/// The training report saved in `dir`, if both rankers are there and of the current format.
pub fn trained(dir: &Path) -> Option<TrainReport> {
    let text = std::fs::read_to_string(dir.join("rankers.json")).ok()?;
    let report: TrainReport = serde_json::from_str(&text).ok()?;
    let complete = RankerKind::ALL
        .iter()
        .all(|kind| kind.weights_in(dir).is_file());
    (report.format == FORMAT && complete).then_some(report)
}

/// Trains the rankers into `dir` unless they are there already (or `retrain`), saying so on
/// stderr. Returns the training report.
pub fn ensure_trained(dir: &Path, retrain: bool) -> Result<TrainReport, String> {
    if !retrain {
        if let Some(report) = trained(dir) {
            return Ok(report);
        }
    }
    eprintln!(
        "training the rankers on a simulated impression log into {} ...",
        dir.display()
    );
    let report = train(&TrainConfig::default(), dir)?;
    eprint!("{report}");
    Ok(report)
}

/// A short hash of a weights file, so results say which weights answered.
fn file_hash(path: &Path) -> Result<String, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    // FNV-1a, 32 bits.
    let hash = bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    Ok(format!("{hash:08x}"))
}

/// `run_inference(Ranker::new(..))`: scores every candidate ad of a request with one ranker and
/// picks the best. All candidates of all requests in a batch go through the model as one tensor.
#[derive(Clone, Debug)]
pub struct Ranker {
    pub kind: RankerKind,
    pub weights: PathBuf,
}

/// A ranker's answer for one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranked {
    /// The click probability the ranker predicts for each candidate, in request order.
    pub scores: Vec<f32>,
    /// The index of the candidate it serves (the highest score).
    pub best: usize,
}

impl Ranker {
    /// The ranker `kind` with its weights from the folder `dir`.
    pub fn new(kind: RankerKind, dir: &Path) -> Self {
        Self {
            kind,
            weights: kind.weights_in(dir),
        }
    }

    /// The id its results carry: the model's name and a hash of its weights file.
    pub fn model_id(&self) -> Result<String, String> {
        Ok(format!(
            "{}@{}",
            self.kind.model_name(),
            file_hash(&self.weights)?
        ))
    }
}

impl ModelHandler for Ranker {
    type Input = AdRequest;
    /// The features of the request's candidates, one row each.
    type Prepared = Vec<f32>;
    type Inference = Ranked;
    type Model = (RankerNet, Device);

    fn name(&self) -> String {
        self.kind.model_name().into()
    }

    fn batching(&self) -> Batching {
        Batching {
            max_batch: 64,
            ..Batching::default()
        }
    }

    fn load(&self, choice: DeviceRequest) -> Result<Loaded<Self::Model>, String> {
        let (device, device_name) =
            tandem_models::device::select(choice).map_err(|e| e.to_string())?;
        let net = RankerNet::load(self.kind, &self.weights, &device)?;
        Ok(Loaded::new((net, device), device_name, self.model_id()?))
    }

    fn prepare(&self, request: &AdRequest) -> Result<Vec<f32>, String> {
        if request.candidates.is_empty() {
            return Err(format!(
                "request {} has no candidate ads",
                request.request_id
            ));
        }
        let user = sim::user(request.user_id);
        let mut features = Vec::with_capacity(request.candidates.len() * self.kind.features());
        for &id in &request.candidates {
            let ad = sim::ad(id).ok_or_else(|| {
                format!(
                    "request {}: ad {id} is not in the simulated market (ids 0..{})",
                    request.request_id,
                    sim::ADS
                )
            })?;
            self.kind.encode(&user, ad, &mut features);
        }
        Ok(features)
    }

    fn infer(
        &self,
        (net, device): &mut Self::Model,
        batch: Vec<Vec<f32>>,
    ) -> Result<Vec<Ranked>, String> {
        let width = self.kind.features();
        let counts: Vec<usize> = batch.iter().map(|f| f.len() / width).collect();
        let scores = net.predict(batch.concat(), width, device)?;
        let mut rest = scores.as_slice();
        Ok(counts
            .into_iter()
            .map(|n| {
                let (mine, after) = rest.split_at(n);
                rest = after;
                let best = mine
                    .iter()
                    .enumerate()
                    .fold(0, |best, (i, &s)| if s > mine[best] { i } else { best });
                Ranked {
                    scores: mine.to_vec(),
                    best,
                }
            })
            .collect())
    }
}
