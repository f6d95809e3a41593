//! The report at the end of an A/B run: CTR per arm with intervals, the lift, the z-test and the
//! decision, and CTR per window.

use std::fmt;
use std::path::Path;

use tandem::io::Share;
use tandem::prelude::{Combined, CtrStats};

use super::pipeline::AbArgs;
use super::sequential::{Msprt, Srm};
use super::sim;
use super::stats::{
    decide, format_p, lift, two_proportion_z_test, Decision, Lift, Proportion, ZTest,
};

/// CTR of both arms in one window.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRow {
    /// Window start and end, milliseconds of simulated event time.
    pub start: i64,
    pub end: i64,
    /// Per arm; `None` when the arm had no impression in the window.
    pub arms: [Option<CtrStats>; 2],
}

/// Everything the report says.
#[derive(Clone, Debug, PartialEq)]
pub struct AbReport {
    pub labels: [&'static str; 2],
    /// The model ids serving each arm (name and weights hash).
    pub models: [String; 2],
    /// What the requests were.
    pub traffic: String,
    pub aa: bool,
    /// Totals per arm, summed over the windows.
    pub totals: [Proportion; 2],
    /// Totals per arm as counted before windowing; equal to `totals` unless clicks were lost to
    /// lateness (they would be in the dead letters).
    pub counted: [Proportion; 2],
    pub windows: Vec<WindowRow>,
    pub test: ZTest,
    pub lift: Option<Lift>,
    pub alpha: f64,
    pub decision: Decision,
    /// The always-valid test, looked at after every window in order (as a live report is).
    pub sequential: Msprt,
    /// The check of the 50/50 split on the impressions.
    pub srm: Srm,
}

impl AbReport {
    /// The report of a finished run, from the CTR per window per arm it collected.
    /// The report of a run on one process: `windows` are the run's, and the impressions and
    /// clicks counted before windowing (`args.tally`) check them.
    pub fn new(args: &AbArgs, windows: &[Combined<String, CtrStats>]) -> Self {
        Self::with_counts(args, windows, args.tally.totals())
    }

    /// The report of a run split across workers, from every worker's part of the windows file
    /// (see [`read_window_parts`]). Each process counted only its own requests before
    /// windowing, so the windows are not checked against those counts here (the job's
    /// accounting in the summary is).
    pub fn of_job(args: &AbArgs, windows: &[Combined<String, CtrStats>]) -> Self {
        let mut report = Self::with_counts(args, windows, Default::default());
        report.counted = report.totals;
        report
    }

    fn with_counts(
        args: &AbArgs,
        windows: &[Combined<String, CtrStats>],
        counted: [Proportion; 2],
    ) -> Self {
        let labels = args.arm_labels();
        let mut rows: Vec<WindowRow> = Vec::new();
        let mut totals = [Proportion::default(); 2];
        for w in windows {
            let Some(arm) = labels.iter().position(|l| *l == w.key) else {
                continue;
            };
            totals[arm].impressions += w.value.impressions;
            totals[arm].clicks += w.value.clicks;
            match rows.iter_mut().find(|r| r.start == w.window.start) {
                Some(row) => row.arms[arm] = Some(w.value),
                None => {
                    let mut row = WindowRow {
                        start: w.window.start,
                        end: w.window.end,
                        arms: [None, None],
                    };
                    row.arms[arm] = Some(w.value);
                    rows.push(row);
                }
            }
        }
        rows.sort_by_key(|r| r.start);
        let test = two_proportion_z_test(totals[0], totals[1]);
        let mut sequential = Msprt::new(args.alpha);
        let mut so_far = [Proportion::default(); 2];
        for row in &rows {
            for (arm, stats) in row.arms.iter().enumerate() {
                if let Some(s) = stats {
                    so_far[arm].impressions += s.impressions;
                    so_far[arm].clicks += s.clicks;
                }
            }
            sequential.look(so_far[0], so_far[1]);
        }
        let srm = Srm::new([totals[0].impressions, totals[1].impressions], 0.5);
        let models = [0, 1].map(|arm| {
            let ranker = args.ranker(arm);
            ranker
                .model_id()
                .unwrap_or_else(|_| ranker.kind.model_name().to_owned())
        });
        let traffic = match &args.requests {
            Some(path) => format!("requests from {}", path.display()),
            None => format!(
                "{} simulated requests (seed {}) over {} simulated minutes",
                args.traffic,
                args.seed,
                sim::SPAN_MS / 60_000
            ),
        };
        Self {
            labels,
            models,
            traffic,
            aa: args.aa,
            totals,
            counted,
            windows: rows,
            test,
            lift: lift(totals[0], totals[1]),
            alpha: args.alpha,
            decision: decide(&test, args.alpha),
            sequential,
            srm,
        }
    }
}

/// The windows of a run split across `workers` workers: every worker's part of the windows file
/// (`ab_windows-00000-of-00002.jsonl`, ...), all committed once the run has returned.
pub fn read_window_parts(
    out: &Path,
    workers: usize,
) -> Result<Vec<Combined<String, CtrStats>>, String> {
    let mut windows = Vec::new();
    for index in 0..workers {
        let part = Share {
            index,
            peers: workers,
        }
        .part_path(out);
        let text = std::fs::read_to_string(&part)
            .map_err(|e| format!("cannot read the windows part {}: {e}", part.display()))?;
        for (n, line) in text.lines().enumerate() {
            windows.push(
                serde_json::from_str(line).map_err(|e| {
                    format!("{}, line {}: not a window: {e}", part.display(), n + 1)
                })?,
            );
        }
    }
    windows
        .sort_by(|a: &Combined<String, CtrStats>, b| (a.window, &a.key).cmp(&(b.window, &b.key)));
    Ok(windows)
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn signed_pct(x: f64) -> String {
    format!("{:+.1}%", 100.0 * x)
}

impl fmt::Display for AbReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.aa { "A/A test" } else { "A/B test" };
        writeln!(
            f,
            "{kind} of two ad rankers on SIMULATED traffic (simulated users and clicks, not real data)"
        )?;
        writeln!(
            f,
            "  traffic: {}, {} candidate ads each, split 50/50 by user id (sticky)",
            self.traffic,
            sim::CANDIDATES
        )?;
        if self.aa {
            writeln!(
                f,
                "  the champion serves both arms: any difference is chance"
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  {:<14} {:<28} {:>11} {:>8} {:>8}   95% interval (Wilson)",
            "arm", "model", "impressions", "clicks", "CTR"
        )?;
        for arm in 0..2 {
            let t = self.totals[arm];
            let (low, high) = t.wilson();
            writeln!(
                f,
                "  {:<14} {:<28} {:>11} {:>8} {:>8}   [{}, {}]",
                self.labels[arm],
                self.models[arm],
                t.impressions,
                t.clicks,
                pct(t.rate()),
                pct(low),
                pct(high)
            )?;
        }
        writeln!(f)?;
        let (a, b) = (self.labels[0], self.labels[1]);
        match self.lift {
            Some(l) => writeln!(
                f,
                "  lift of {b} over {a}: {} (95% interval {} to {})",
                signed_pct(l.relative),
                signed_pct(l.low),
                signed_pct(l.high)
            )?,
            None => writeln!(
                f,
                "  lift of {b} over {a}: undefined (an arm has no clicks)"
            )?,
        }
        writeln!(
            f,
            "  two-proportion z-test (pooled, two-sided): z = {:.2}, p = {}",
            self.test.z,
            format_p(self.test.p_value)
        )?;
        let decision = if self.aa {
            // In an A/A test the arms' names are not champion and challenger.
            match self.decision {
                Decision::NoSignificantDifference { .. } => self.decision.to_string(),
                _ => format!(
                    "significant difference (p = {}): a false positive, the arms run the same model",
                    format_p(self.test.p_value)
                ),
            }
        } else {
            self.decision.to_string()
        };
        writeln!(f, "  decision at alpha = {}: {decision}", self.alpha)?;
        writeln!(
            f,
            "  looked at after each of {} windows (mSPRT, tau = {}): {}",
            self.sequential.looks,
            self.sequential.tau,
            self.sequential.verdict()
        )?;
        writeln!(f, "  {}", self.srm.verdict())?;
        if self.counted != self.totals {
            writeln!(
                f,
                "  warning: the windows hold {:?} but {:?} were served: some clicks came too late for their window (see the dead letters)",
                self.totals, self.counted
            )?;
        }
        writeln!(f)?;
        writeln!(f, "  CTR per 5-minute window of simulated time:")?;
        writeln!(f, "    {:<9} {:>22} {:>22}", "minutes", a, b)?;
        for row in &self.windows {
            let cell = |s: Option<CtrStats>| match s {
                Some(s) => format!("{} of {}", pct(s.rate), s.impressions),
                None => "-".to_owned(),
            };
            let minutes = format!("{}-{}", row.start / 60_000, row.end / 60_000);
            writeln!(
                f,
                "    {:<9} {:>22} {:>22}",
                minutes,
                cell(row.arms[0]),
                cell(row.arms[1])
            )?;
        }
        Ok(())
    }
}
