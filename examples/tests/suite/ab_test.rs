//! `ab_test`: its statistics on known numbers, the rankers' training, and the real pipeline on
//! simulated traffic — the challenger detected at the default traffic, the A/A false-positive
//! rate over 100 seeds, and windows that add up to the totals.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use tandem::prelude::*;
use tandem_examples::ab::stats::{erfc, Lift, ZTest};
use tandem_examples::ab::{
    decide, lift, normal_cdf, train, two_proportion_z_test, AbArgs, AbReport, AbTest, Decision,
    Proportion, TrainConfig, DEFAULT_TRAFFIC,
};

fn close(got: f64, want: f64, tolerance: f64) -> bool {
    (got - want).abs() <= tolerance * want.abs().max(1e-300)
}

#[test]
fn erfc_normal_cdf_z_test_and_lift_match_known_values() {
    // Reference values: Python's math.erfc (double precision).
    for (x, want) in [
        (0.0, 1.0),
        (0.5, 0.479_500_122_186_953_5),
        (1.0, 0.157_299_207_050_285_13),
        (2.0, 0.004_677_734_981_047_265),
        (3.0, 2.209_049_699_858_543_8e-5),
        (-1.0, 1.842_700_792_949_715),
        (-2.5, 1.999_593_047_982_555),
    ] {
        assert!(
            close(erfc(x), want, 2e-7),
            "erfc({x}) = {}, want {want}",
            erfc(x)
        );
    }
    assert!(close(normal_cdf(1.959_963_984_540_054), 0.975, 1e-7));
    assert!(close(normal_cdf(-1.644_853_626_951_472_2), 0.05, 1e-6));
    assert!(close(normal_cdf(-3.0), 0.001_349_898_031_630_095_7, 1e-6));

    // 200/1000 against 250/1000: R's prop.test(c(200, 250), c(1000, 1000), correct = FALSE)
    // gives X² = 7.1685 (= z²) and p = 0.00742.
    let (a, b) = (Proportion::new(200, 1000), Proportion::new(250, 1000));
    let ZTest { z, p_value } = two_proportion_z_test(a, b);
    assert!(close(z, 2.677_397_763_008_329, 1e-12), "z = {z}");
    assert!(close(z * z, 7.1685, 1e-4));
    assert!(
        close(p_value, 0.007_419_649_261_025_693, 1e-5),
        "p = {p_value}"
    );
    // The test is symmetric: the other way round, z changes sign, p does not.
    let back = two_proportion_z_test(b, a);
    assert!(close(back.z, -z, 1e-12) && close(back.p_value, p_value, 1e-12));
    // The same rates give z = 0 and p = 1.
    let same = two_proportion_z_test(Proportion::new(100, 1000), Proportion::new(100, 1000));
    assert_eq!((same.z, same.p_value), (0.0, 1.0));
    // An empty arm is not a test.
    assert_eq!(two_proportion_z_test(Proportion::new(0, 0), b).p_value, 1.0);

    // Lift 0.25 / 0.20 - 1 = +25%, delta-method interval on log(ratio).
    let Lift {
        relative,
        low,
        high,
    } = lift(a, b).unwrap();
    assert!(close(relative, 0.25, 1e-12));
    assert!(close(low, 0.060_946_250_837_563_11, 1e-9), "low = {low}");
    assert!(close(high, 0.472_741_902_586_003_35, 1e-9), "high = {high}");
    assert!(lift(Proportion::new(0, 1000), b).is_none());

    assert_eq!(
        decide(&ZTest { z, p_value }, 0.05),
        Decision::ChallengerWins { p_value }
    );
    assert_eq!(decide(&back, 0.05), Decision::ChampionWins { p_value });
    assert_eq!(
        decide(&ZTest { z, p_value }, 0.001),
        Decision::NoSignificantDifference { p_value }
    );
    assert_eq!(
        decide(&ZTest { z, p_value }, 0.05).to_string(),
        "challenger wins (p = 0.0074)"
    );
}

#[test]
fn the_challenger_learns_the_interaction_the_champion_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        train_rows: 60_000,
        valid_rows: 20_000,
        epochs: 3,
        ..TrainConfig::default()
    };
    let started = Instant::now();
    let report = train(&config, dir.path()).unwrap();
    eprintln!("trained in {:.1?}:\n{report}", started.elapsed());
    // Both learn something, the challenger more, and neither beats the click model itself.
    assert!(
        report.champion_log_loss < report.constant_log_loss - 0.003,
        "{report}"
    );
    assert!(
        report.challenger_log_loss < report.champion_log_loss - 0.003,
        "{report}"
    );
    assert!(
        report.challenger_log_loss > report.true_model_log_loss - 0.002,
        "{report}"
    );
    assert!(dir.path().join("champion.safetensors").is_file());
    assert!(dir.path().join("challenger.safetensors").is_file());
    // The report saved beside the weights is the one returned. Its floats compared to within a
    // few ulps: serde_json (without `float_roundtrip`) may read a float back one ulp off, which
    // made an exact comparison fail about once in a few hundred runs.
    let saved = tandem_examples::ab::ranker::trained(dir.path()).expect("a saved report");
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs());
    assert_eq!(
        (saved.format, &saved.config),
        (report.format, &report.config)
    );
    for (a, b) in [
        (saved.train_ctr, report.train_ctr),
        (saved.champion_log_loss, report.champion_log_loss),
        (saved.challenger_log_loss, report.challenger_log_loss),
        (saved.true_model_log_loss, report.true_model_log_loss),
        (saved.constant_log_loss, report.constant_log_loss),
        (saved.seconds, report.seconds),
    ] {
        assert!(close(a, b), "saved {a} vs returned {b}\n{saved}\n{report}");
    }
}

/// Rankers trained once (default settings, as `ab_test` trains them) for the pipeline tests.
fn weights() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let report = train(&TrainConfig::default(), dir.path()).unwrap();
        eprintln!("trained in {:.1?}:\n{report}", started.elapsed());
        dir
    })
    .path()
}

struct Run {
    args: AbArgs,
    summary: Summary,
    report: AbReport,
    windows: Vec<Combined<String, CtrStats>>,
}

fn outputs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let chart = dir.path().join("chart.svg");
    (dir, out, chart)
}

fn run(args: AbArgs) -> Run {
    let config = RunConfig {
        device: DeviceChoice::Cpu,
        ..RunConfig::default()
    };
    let summary = tandem::job::run_pipeline::<AbTest>(&args, &config).unwrap();
    assert!(
        summary.totals().balanced(),
        "counts do not add up:\n{summary}"
    );
    let windows = args.windows.take();
    let report = AbReport::new(&args, &windows);
    Run {
        args,
        summary,
        report,
        windows,
    }
}

#[test]
fn at_the_default_traffic_the_challenger_wins_and_every_request_is_counted() {
    let (_dir, out, chart) = outputs();
    let started = Instant::now();
    let Run {
        args,
        summary,
        report,
        ..
    } = run(AbArgs::new(weights(), &out, &chart));
    eprintln!("ran in {:.1?}:\n{summary}\n{report}", started.elapsed());
    assert!(summary.dead_letters.is_empty(), "{summary}");
    // Every simulated request is served by exactly one arm, and each arm has about half.
    let [a, b] = report.totals;
    assert_eq!(a.impressions + b.impressions, DEFAULT_TRAFFIC);
    assert!(
        a.impressions.abs_diff(b.impressions) < DEFAULT_TRAFFIC / 20,
        "{report}"
    );
    assert!(
        matches!(report.decision, Decision::ChallengerWins { p_value } if p_value < 0.001),
        "{report}"
    );
    let lift = report.lift.unwrap();
    assert!(
        (0.05..0.5).contains(&lift.relative) && lift.low > 0.0,
        "{report}"
    );
    assert!(report.to_string().contains("SIMULATED"));
    tandem_examples::ab::chart::write_chart(&report, &args.chart).unwrap();
    let svg = std::fs::read_to_string(&args.chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("SIMULATED") && svg.contains("challenger"));
}

#[test]
fn ctr_per_window_per_arm_adds_up_to_the_totals() {
    let (_dir, out, chart) = outputs();
    let args = AbArgs {
        traffic: 12_000,
        seed: 5,
        ..AbArgs::new(weights(), &out, &chart)
    };
    let Run {
        args,
        summary,
        report,
        windows,
    } = run(args);
    assert!(summary.dead_letters.is_empty(), "{summary}");
    // 12 windows of 5 minutes over the simulated hour, both arms in each, in window order.
    assert_eq!(windows.len(), 24);
    assert_eq!(report.windows.len(), 12);
    for (i, row) in report.windows.iter().enumerate() {
        assert_eq!(
            (row.start, row.end),
            (i as i64 * 300_000, (i as i64 + 1) * 300_000)
        );
    }
    // Each arm's windows come in window order (the arms are windowed apart, then merged).
    for label in args.arm_labels() {
        let starts: Vec<i64> = windows
            .iter()
            .filter(|w| w.key == label)
            .map(|w| w.window.start)
            .collect();
        assert_eq!(starts, (0..12).map(|i| i * 300_000).collect::<Vec<_>>());
    }
    // The windows' impressions and clicks, summed, are the counts taken before windowing.
    let mut sums = [(0u64, 0u64); 2];
    for w in &windows {
        let arm = args.arm_labels().iter().position(|l| *l == w.key).unwrap();
        sums[arm].0 += w.value.impressions;
        sums[arm].1 += w.value.clicks;
        assert_eq!(w.value, CtrStats::new(w.value.impressions, w.value.clicks));
    }
    let counted = args.tally.totals();
    for arm in 0..2 {
        assert_eq!(sums[arm], (counted[arm].impressions, counted[arm].clicks));
        assert_eq!(report.totals[arm], counted[arm]);
    }
    assert_eq!(sums[0].0 + sums[1].0, 12_000);
    // And the JSON lines file holds the same windows.
    let lines = std::fs::read_to_string(&out).unwrap();
    assert_eq!(lines.lines().count(), windows.len());
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["value"]["impressions"], windows[0].value.impressions);
}

/// The A/A false-positive rate, on the real pipeline for every seed: the champion in both arms,
/// 100 seeds of the default traffic (30,000 simulated requests, about 15,000 impressions per arm
/// at a CTR of ~13.5%), at alpha = 0.05. About 5 runs in 100 should be false positives; more than
/// 10 would mean the test (or the split, or the simulation) is broken.
#[test]
fn an_aa_test_finds_no_difference_in_at_least_90_of_100_seeds() {
    let weights = weights();
    let (_dir, out, chart) = outputs();
    let started = Instant::now();
    let mut significant = Vec::new();
    for seed in 0..100 {
        let args = AbArgs {
            aa: true,
            traffic: DEFAULT_TRAFFIC,
            seed,
            ..AbArgs::new(weights, &out, &chart)
        };
        let Run {
            summary, report, ..
        } = run(args);
        assert!(summary.dead_letters.is_empty(), "{summary}");
        assert_eq!(report.models[0], report.models[1]);
        if report.decision.significant() {
            significant.push((seed, report.test.p_value));
        }
    }
    eprintln!(
        "A/A: {} of 100 seeds significant at 0.05 ({significant:?}), in {:.1?}",
        significant.len(),
        started.elapsed()
    );
    assert!(significant.len() <= 10, "{significant:?}");
}

#[test]
fn requests_from_a_file_are_served_and_a_bad_one_is_a_dead_letter() {
    let (dir, out, chart) = outputs();
    let requests = dir.path().join("requests.jsonl");
    let mut text = String::new();
    for r in tandem_examples::ab::sim::requests(200, 9) {
        text.push_str(&serde_json::to_string(&r).unwrap());
        text.push('\n');
    }
    // An ad the simulated market does not have: the ranker refuses the request.
    text.push_str(
        r#"{"request_id": 200, "user_id": 1, "time": 3599000, "candidates": [1, 99999]}"#,
    );
    text.push('\n');
    std::fs::write(&requests, text).unwrap();
    let args = AbArgs {
        requests: Some(requests),
        ..AbArgs::new(weights(), &out, &chart)
    };
    let Run {
        summary, report, ..
    } = run(args);
    assert_eq!(summary.dead_letters.len(), 1, "{summary}");
    assert!(summary.dead_letters[0]
        .error
        .contains("not in the simulated market"));
    assert_eq!(
        report.totals[0].impressions + report.totals[1].impressions,
        200
    );
}

/// The `ab_test` binary on `traffic` simulated requests in `dir`, writing `windows.jsonl`; with
/// `split = Some((process, processes, workers, hostfile))`, one process of a split run.
fn ab_test_command(
    dir: &Path,
    traffic: u64,
    split: Option<(usize, usize, usize, &Path)>,
) -> Command {
    let mut command = Command::new(crate::bins::example_binary("ab_test"));
    command
        .args([
            "--traffic",
            &traffic.to_string(),
            "--device",
            "cpu",
            "--quiet",
        ])
        .arg("--weights-dir")
        .arg(weights())
        .args(["--out", "windows.jsonl", "--chart", "chart.svg"])
        .current_dir(dir)
        .env_remove("TANDEM_WORKERS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((process, processes, workers, hostfile)) = split {
        command
            .args(["--workers", &workers.to_string()])
            .args(["--processes", &processes.to_string()])
            .args(["--process", &process.to_string()])
            .arg("--hostfile")
            .arg(hostfile);
    }
    command
}

/// Runs the `ab_test` binary in a folder of its own under `root` (named `name`) on `processes`
/// processes of `workers` workers each; returns process 0's standard output (the report) and
/// the lines of every part of the windows file, sorted.
fn run_binary(root: &Path, name: &str, processes: usize, workers: usize) -> (String, Vec<String>) {
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    let hostfile = crate::bins::hostfile(&dir, processes);
    let split = processes > 1 || workers > 1;
    let children: Vec<_> = (0..processes)
        .map(|process| {
            ab_test_command(
                &dir,
                4000,
                split.then_some((process, processes, workers, &*hostfile)),
            )
            .spawn()
            .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    for (process, output) in outputs.iter().enumerate() {
        assert!(
            output.status.success(),
            "{name}, process {process}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        if process > 0 {
            assert!(
                output.stdout.is_empty(),
                "{name}: process {process} printed"
            );
        }
    }
    let mut lines = Vec::new();
    for file in windows_files(&dir) {
        let text = std::fs::read_to_string(&file).unwrap();
        lines.extend(text.lines().map(str::to_owned));
    }
    lines.sort();
    (String::from_utf8(outputs[0].stdout.clone()).unwrap(), lines)
}

/// The windows files (whole or parts) in `dir`.
fn windows_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("windows") && name.ends_with(".jsonl")
        })
        .collect()
}

/// The same binary split across 2 workers of one process, and across 2 and 4 processes on
/// 127.0.0.1 (each key's windows combined by the worker owning it): the windows and the report
/// are the single run's.
#[test]
fn ab_test_split_across_processes_gives_the_single_runs_windows_and_report() {
    let root = tempfile::tempdir().unwrap();
    let (report, windows) = run_binary(root.path(), "single", 1, 1);
    assert!(
        report.contains("lift of challenger over champion"),
        "{report}"
    );
    assert!(windows.len() > 10, "{windows:?}");
    for (name, processes, workers) in [
        ("workers-2", 1, 2),
        ("processes-2", 2, 1),
        ("processes-4", 4, 1),
    ] {
        let (split_report, split_windows) = run_binary(root.path(), name, processes, workers);
        assert_eq!(split_windows, windows, "{name}");
        assert_eq!(split_report, report, "{name}");
    }
}

/// One process of a split `ab_test` killed mid-run (both serving, accumulators crossing between
/// them): the other exits non-zero within 10 s naming it, and no windows file is committed.
#[test]
fn ab_test_split_a_killed_process_stops_the_other_and_nothing_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let hostfile = crate::bins::hostfile(dir.path(), 2);
    let children = (0..2)
        .map(|process| {
            ab_test_command(dir.path(), 2_000_000, Some((process, 2, 1, &*hostfile)))
                .spawn()
                .unwrap()
        })
        .collect();
    // Well under way: 2M requests take each process tens of seconds in a dev build, and they
    // connect within the first second.
    let started = std::time::Instant::now();
    crate::bins::kill_the_second_when(crate::bins::Children(children), || {
        started.elapsed() > std::time::Duration::from_secs(3)
    });
    assert!(
        windows_files(dir.path()).is_empty(),
        "{:?}",
        windows_files(dir.path())
    );
}
