//! The A/B pipeline: simulated requests split 50/50 by user between the champion and the
//! challenger ranker, each serving its top ad, simulated clicks, CTR per arm per 5 minutes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tandem::inference::PredictionResult;
use tandem::io::{
    JsonLinesReader, JsonLinesWriter, JsonPart, MemorySource, Record, RedisStreamReader,
    RollingWriter, Source,
};
use tandem::prelude::*;

use super::live::{InMemory, LiveOutputs, Maybe};
use super::ranker::{default_weights_dir, Ranked, Ranker, RankerKind};
use super::sim::{self, AdRequest, SimulatedRequests};
use super::stats::Proportion;

/// Simulated requests served by default: enough for the challenger's lift to be significant in
/// practically every run (see the tests).
pub const DEFAULT_TRAFFIC: u64 = 30_000;

/// How far behind the latest event time a request may come and still count in its window: the
/// simulated requests come in time order, a file's may be a little out of order.
///
/// Each arm is windowed on its own, before the arms are merged: within an arm the requests stay
/// in their order (the split and `run_inference` keep it), while the two arms reach a `merge` at
/// their own pace, so a merged stream is in time order per arm only, and its largest time seen
/// (the window stage's watermark) would run ahead of the slower arm's windows.
pub const ALLOWED_LATENESS: Duration = Duration::from_secs(60);

/// The options of `ab_test` (beside the standard ones: `--device`, `--graph`, ...).
#[derive(clap::Args)]
pub struct AbArgs {
    /// Simulated ad requests to serve (the traffic is simulated, as are the clicks).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_TRAFFIC)]
    pub traffic: u64,
    /// Seed of the simulated traffic and clicks (the simulated market and the trained rankers stay
    /// the same whatever the seed).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Read the requests from this JSON lines file (`{"request_id", "user_id", "time",
    /// "candidates"}` per line) instead of simulating them; the clicks are still simulated.
    #[arg(long, value_name = "PATH")]
    pub requests: Option<PathBuf>,
    /// An A/A test: the champion serves both arms (the test should find no difference).
    #[arg(long)]
    pub aa: bool,
    /// Where CTR per window per arm goes, as JSON lines.
    #[arg(long, value_name = "PATH", default_value = "ab_windows.jsonl")]
    pub out: PathBuf,
    /// Where the chart of CTR per window per arm goes (SVG).
    #[arg(long, value_name = "PATH", default_value = "ab_test.svg")]
    pub chart: PathBuf,
    /// The rankers' weights folder (trained into it first when missing) [default:
    /// $TANDEM_HOME/rankers]
    #[arg(long, value_name = "DIR")]
    pub weights_dir: Option<PathBuf>,
    /// Train the rankers again even if their weights are there.
    #[arg(long)]
    pub retrain: bool,
    /// Significance level of the decision.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Serve the requests of a Redis stream instead (`redis://HOST:PORT/STREAM?group=G`, filled by
    /// `ab_traffic`), until SIGINT/SIGTERM: CTR per window goes to `--live-windows` and the report
    /// to `--live-report` as each window closes.
    #[arg(long, value_name = "URL")]
    pub live: Option<String>,
    /// Where CTR per window per arm goes in live mode (a Redis stream).
    #[arg(
        long,
        value_name = "URL",
        default_value = "redis://127.0.0.1:6379/ab-windows"
    )]
    pub live_windows: String,
    /// Where CTR per window per arm also goes in live mode: a folder of JSON lines parts, one
    /// renamed into place at each checkpoint that brought window results (`part-000001.jsonl`,
    /// ...).
    #[arg(long, value_name = "DIR", default_value = "ab_windows")]
    pub live_parts: PathBuf,
    /// The report, written again as each window closes in live mode.
    #[arg(long, value_name = "PATH", default_value = "ab_report.txt")]
    pub live_report: PathBuf,
    /// In live mode, end once no request has arrived for this many milliseconds.
    #[arg(long, value_name = "MS")]
    pub until_idle: Option<u64>,
    /// CTR per window per arm, for the report.
    #[arg(skip)]
    pub windows: Collector<Combined<String, CtrStats>>,
    /// Impressions and clicks per arm, counted before windowing (a check on the windows).
    #[arg(skip)]
    pub tally: Tally,
}

impl AbArgs {
    /// The defaults of the command line, with the weights and outputs where given.
    pub fn new(weights_dir: &Path, out: &Path, chart: &Path) -> Self {
        Self {
            traffic: DEFAULT_TRAFFIC,
            seed: 1,
            requests: None,
            aa: false,
            out: out.to_owned(),
            chart: chart.to_owned(),
            weights_dir: Some(weights_dir.to_owned()),
            retrain: false,
            alpha: 0.05,
            live: None,
            live_windows: "redis://127.0.0.1:6379/ab-windows".into(),
            live_parts: PathBuf::from("ab_windows"),
            live_report: PathBuf::from("ab_report.txt"),
            until_idle: None,
            windows: Collector::new(),
            tally: Tally::default(),
        }
    }

    pub fn weights_dir(&self) -> PathBuf {
        self.weights_dir.clone().unwrap_or_else(default_weights_dir)
    }

    /// The two arms' names: the CTR keys, in the windows and the report.
    pub fn arm_labels(&self) -> [&'static str; 2] {
        if self.aa {
            ["A (champion)", "B (champion)"]
        } else {
            ["champion", "challenger"]
        }
    }

    /// The ranker serving an arm (0 or 1): the champion in both for an A/A test.
    pub fn ranker_kind(&self, arm: usize) -> RankerKind {
        if arm == 0 || self.aa {
            RankerKind::Champion
        } else {
            RankerKind::Challenger
        }
    }

    pub fn ranker(&self, arm: usize) -> Ranker {
        Ranker::new(self.ranker_kind(arm), &self.weights_dir())
    }

    /// The windows file: not in live mode, where a file would be written only at the end.
    pub fn windows_file(&self) -> Maybe<JsonLinesWriter> {
        match self.live {
            Some(_) => Maybe::Off,
            None => Maybe::On(JsonLines::create(&self.out)),
        }
    }

    /// In live mode, the windows' rolling parts.
    pub fn windows_parts(&self) -> Maybe<RollingWriter<JsonPart>> {
        match self.live {
            Some(_) => Maybe::On(JsonLines::rolling(&self.live_parts)),
            None => Maybe::Off,
        }
    }

    /// The windows kept for the report at the end.
    pub fn windows_kept(&self) -> InMemory<Collector<Combined<String, CtrStats>>> {
        InMemory(self.windows.clone())
    }

    /// In live mode: the windows stream and the refreshed report.
    pub fn live_outputs(&self) -> Maybe<LiveOutputs<'_>> {
        match self.live {
            Some(_) => Maybe::On(LiveOutputs {
                stream: RedisStream::write(&self.live_windows),
                report: self.live_report.clone(),
                args: self,
                windows: Default::default(),
            }),
            None => Maybe::Off,
        }
    }

    /// Where the requests come from.
    pub fn request_source(&self) -> RequestSource {
        if let Some(url) = &self.live {
            let source = RedisStream::<AdRequest>::read(url).from_start();
            return RequestSource::Live(Box::new(match self.until_idle {
                Some(ms) => source.until_idle(Duration::from_millis(ms)),
                None => source,
            }));
        }
        match &self.requests {
            Some(path) => RequestSource::File(JsonLines::open(path)),
            None => RequestSource::Simulated {
                traffic: self.traffic,
                seed: self.seed,
                requests: Box::new(Memory::new(sim::requests(self.traffic, self.seed))),
            },
        }
    }
}

/// The requests: simulated, or read from a JSON lines file (`--requests`, or the standard
/// `--input`).
pub enum RequestSource {
    Simulated {
        traffic: u64,
        seed: u64,
        requests: Box<MemorySource<SimulatedRequests>>,
    },
    File(JsonLinesReader<AdRequest>),
    Live(Box<RedisStreamReader<AdRequest>>),
}

impl Source for RequestSource {
    type Item = AdRequest;

    fn describe(&self) -> String {
        match self {
            Self::Simulated { traffic, seed, .. } => {
                format!("{traffic} simulated ad requests (seed {seed})")
            }
            Self::File(file) => file.describe(),
            Self::Live(stream) => stream.describe(),
        }
    }

    fn set_path(&mut self, path: &Path) -> bool {
        *self = Self::File(JsonLines::open(path));
        true
    }

    fn open(&mut self) -> tandem::Result<()> {
        match self {
            Self::Simulated { requests, .. } => requests.open(),
            Self::File(file) => file.open(),
            Self::Live(stream) => stream.open(),
        }
    }

    fn read_chunk<E: FnMut(Record<AdRequest>)>(
        &mut self,
        max: usize,
        emit: E,
    ) -> tandem::Result<bool> {
        match self {
            Self::Simulated { requests, .. } => requests.read_chunk(max, emit),
            Self::File(file) => file.read_chunk(max, emit),
            Self::Live(stream) => stream.read_chunk(max, emit),
        }
    }

    /// A wrapped source passes its acknowledgements on (a stream's `XACK`).
    fn checkpoint(&mut self) -> tandem::Result<Option<Box<dyn tandem::io::Commit>>> {
        match self {
            Self::Live(stream) => stream.checkpoint(),
            _ => Ok(None),
        }
    }

    fn acknowledges(&self) -> bool {
        matches!(self, Self::Live(_))
    }
}

/// The ad an arm served for a request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Served {
    pub arm: &'static str,
    /// 0 for the champion's arm, 1 for the challenger's.
    pub arm_index: usize,
    pub request_id: u64,
    pub user_id: u64,
    pub time: u64,
    pub ad_id: u32,
    /// The click probability the ranker predicted for the served ad.
    pub score: f32,
    pub model_id: Arc<str>,
}

impl Served {
    pub fn new(
        arm_index: usize,
        arm: &'static str,
        p: PredictionResult<AdRequest, Ranked>,
    ) -> Self {
        let PredictionResult {
            example,
            inference,
            model_id,
        } = p;
        Self {
            arm,
            arm_index,
            request_id: example.request_id,
            user_id: example.user_id,
            time: example.time,
            ad_id: example.candidates[inference.best],
            score: inference.scores[inference.best],
            model_id,
        }
    }
}

/// A served ad and whether the simulated user clicked it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Click {
    pub arm: &'static str,
    pub arm_index: usize,
    pub request_id: u64,
    pub user_id: u64,
    pub time: u64,
    pub ad_id: u32,
    /// The simulated click model's probability for this user and ad.
    pub click_probability: f64,
    pub clicked: bool,
}

/// The simulated user's response to a served ad, from the same simulated click model the rankers
/// were trained on, drawn from the traffic seed and the request id (not from thread timing).
pub fn simulate_click(served: Served, seed: u64) -> Click {
    let p = sim::ad(served.ad_id).map_or(0.0, |ad| {
        sim::click_probability(&sim::user(served.user_id), ad)
    });
    Click {
        arm: served.arm,
        arm_index: served.arm_index,
        request_id: served.request_id,
        user_id: served.user_id,
        time: served.time,
        ad_id: served.ad_id,
        click_probability: p,
        clicked: sim::simulated_click(seed, served.request_id, p),
    }
}

/// Impressions and clicks per arm, counted as they pass.
#[derive(Debug, Default)]
pub struct Tally {
    impressions: [AtomicU64; 2],
    clicks: [AtomicU64; 2],
}

impl Tally {
    pub fn add(&self, click: &Click) {
        self.impressions[click.arm_index].fetch_add(1, Ordering::Relaxed);
        self.clicks[click.arm_index].fetch_add(u64::from(click.clicked), Ordering::Relaxed);
    }

    pub fn totals(&self) -> [Proportion; 2] {
        [0, 1].map(|arm| {
            Proportion::new(
                self.clicks[arm].load(Ordering::Relaxed),
                self.impressions[arm].load(Ordering::Relaxed),
            )
        })
    }
}

pipeline! {
    /// A champion/challenger A/B test of two ad rankers on SIMULATED traffic: requests are split
    /// 50/50 by user id (sticky), each arm's ranker serves its top ad, a simulated user model
    /// clicks, and the CTR of each arm is measured per 5 minutes of event time.
    pub AbTest(args: AbArgs) {
        requests = read(args.request_source());
        [champion, challenger] = requests
            -> partition(split_by(|r: &AdRequest| r.user_id, [50, 50]));
        a = champion
            -> run_inference(args.ranker(0))
            -> map(|p: PredictionResult<AdRequest, Ranked>| Served::new(0, args.arm_labels()[0], p))
            -> map(|s: Served| simulate_click(s, args.seed))
            -> inspect(|c: &Click| args.tally.add(c))
            -> window(Fixed::minutes(5).allowed_lateness(ALLOWED_LATENESS), |c: &Click| c.time)
            -> combine_per_key(|c: &Click| c.arm.to_string(), Ctr::of(|c: &Click| c.clicked));
        b = challenger
            -> run_inference(args.ranker(1))
            -> map(|p: PredictionResult<AdRequest, Ranked>| Served::new(1, args.arm_labels()[1], p))
            -> map(|s: Served| simulate_click(s, args.seed))
            -> inspect(|c: &Click| args.tally.add(c))
            -> window(Fixed::minutes(5).allowed_lateness(ALLOWED_LATENESS), |c: &Click| c.time)
            -> combine_per_key(|c: &Click| c.arm.to_string(), Ctr::of(|c: &Click| c.clicked));
        windows = merge(a, b);
        windows -> write(args.windows_file());
        windows -> write(args.windows_parts());
        windows -> write(args.windows_kept());
        windows -> write(args.live_outputs());
    }
}
