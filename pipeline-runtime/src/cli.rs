//! The standard command line of a generated pipeline binary, merged with the user's own
//! `#[derive(clap::Args)]` struct.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, FromArgMatches};

use crate::deadletter::DeadLetterTarget;
use crate::exec::{Pipeline, RunConfig};
use crate::job::run_pipeline;

/// Graph output formats for `--graph`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

// The options every pipeline binary has. (A `//` comment: clap would make a doc comment the
// binary's `about`.)
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Pipeline options")]
pub struct StdArgs {
    /// Print the pipeline's graph and exit.
    #[arg(long, value_name = "FORMAT")]
    pub graph: Option<GraphFormat>,
    /// Replace a file source's path: `PATH` when there is one source, else `STREAM=PATH`.
    #[arg(long = "input", value_name = "[STREAM=]PATH", value_parser = parse_override)]
    pub inputs: Vec<(Option<String>, PathBuf)>,
    /// Replace a file sink's path: `PATH` when there is one sink, else `sinkN=PATH`.
    #[arg(long = "output", value_name = "[SINK=]PATH", value_parser = parse_override)]
    pub outputs: Vec<(Option<String>, PathBuf)>,
    /// Where records that could not be processed go, as JSON lines (created only if there are any).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "dead-letters.jsonl",
        env = "TANDEM_DEAD_LETTERS"
    )]
    pub dead_letters: PathBuf,
    /// Stop with an error at the first record that cannot be processed.
    #[arg(long)]
    pub fail_fast: bool,
    /// Elements per batch between stages.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Where models run: a GPU through wgpu when one is usable (auto), or the CPU.
    #[arg(
        long,
        value_name = "DEVICE",
        default_value = "auto",
        env = "TANDEM_DEVICE"
    )]
    pub device: crate::inference::DeviceChoice,
    /// Let `--device gpu` use a software adapter (Mesa's lavapipe) where there is no GPU: for
    /// testing the wgpu path, not for serving.
    #[arg(long, hide = true, env = "TANDEM_SOFTWARE_GPU", value_parser = clap::builder::BoolishValueParser::new(), default_value = "false")]
    pub software_gpu: bool,
    /// Serve Prometheus metrics on this address while the pipeline runs (`GET /metrics`),
    /// e.g. `127.0.0.1:9184`.
    #[arg(long, value_name = "ADDR", env = "TANDEM_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How often a checkpoint ends an epoch: sources acknowledge their input (a stream's
    /// `XACK`) once everything read before it has reached every sink durably (`500ms`, `1s`,
    /// `2m`; `off` for none).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub checkpoint_interval: Interval,
    /// Also end an epoch every N records read.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_every: Option<u64>,
    /// Worker threads in this process: more than one splits the input across them (on timely
    /// dataflow).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), env = "TANDEM_WORKERS")]
    pub workers: u32,
    /// Processes running this pipeline together, each started with the same options and its
    /// own `--process` (see `--hostfile`).
    #[arg(long, value_name = "P", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), env = "TANDEM_PROCESSES")]
    pub processes: u32,
    /// This process's index among `--processes`, from 0 (process 0 prints the job's summary).
    #[arg(long, value_name = "I", default_value_t = 0, env = "TANDEM_PROCESS")]
    pub process: u32,
    /// The processes' addresses, one `host:port` line each, in process order (default
    /// `localhost:2101`, `localhost:2102`, ...).
    #[arg(long, value_name = "FILE", env = "TANDEM_HOSTFILE")]
    pub hostfile: Option<PathBuf>,
    /// Print no progress and no summary (errors still go to stderr).
    #[arg(long, short)]
    pub quiet: bool,
}

/// `--checkpoint-interval`: a duration, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval(pub Option<std::time::Duration>);

fn parse_interval(text: &str) -> Result<Interval, String> {
    if text == "off" {
        return Ok(Interval(None));
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: write `500ms`, `1s` or `2m`"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let millis = match unit {
        "ms" => number,
        "s" => number.saturating_mul(1000),
        "m" => number.saturating_mul(60_000),
        _ => return Err(format!("unknown unit `{unit}`: use `ms`, `s` or `m`")),
    };
    if millis == 0 {
        return Err("a checkpoint interval must be positive (`off` for none)".into());
    }
    Ok(Interval(Some(std::time::Duration::from_millis(millis))))
}

fn parse_override(text: &str) -> Result<(Option<String>, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if !name.is_empty() && !name.contains(['/', '\\']) => {
            Ok((Some(name.to_owned()), PathBuf::from(path)))
        }
        _ if text.is_empty() => Err("an empty path".into()),
        _ => Ok((None, PathBuf::from(text))),
    }
}

impl StdArgs {
    pub fn config(&self) -> RunConfig {
        RunConfig {
            batch_size: self.batch_size as usize,
            fail_fast: self.fail_fast,
            dead_letters: DeadLetterTarget::File(self.dead_letters.clone()),
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            progress: !self.quiet,
            device: self.device,
            software_gpu: self.software_gpu,
            metrics_addr: self.metrics_addr,
            checkpoints: crate::checkpoint::CheckpointPolicy {
                interval: self.checkpoint_interval.0,
                every: self.checkpoint_every,
            },
            cluster: crate::cluster::Cluster {
                workers: self.workers as usize,
                processes: self.processes as usize,
                process: self.process as usize,
                hostfile: self.hostfile.clone(),
            },
            ..RunConfig::default()
        }
    }
}

/// `main()` for every pipeline whose args are a `clap::Args` struct.
pub trait PipelineMain: Pipeline {
    /// Parses the command line, runs the pipeline, prints the summary; exits non-zero on failure
    /// (130/143 when stopped by SIGINT/SIGTERM).
    fn main() -> ExitCode {
        Self::main_with(|_| Ok(()), |_, _| Ok(()))
    }

    /// [`PipelineMain::main`] with work of your own: `before` runs after the command line is
    /// parsed and before the pipeline starts (train or fetch a model, say), `after` once the run
    /// ended well, with the summary (print a report from what your sinks collected). An error
    /// from either is printed and exits with code 1.
    fn main_with(
        before: impl FnOnce(&Self::Args) -> Result<(), String>,
        after: impl FnOnce(&Self::Args, &crate::Summary) -> Result<(), String>,
    ) -> ExitCode;
}

impl<P> PipelineMain for P
where
    P: Pipeline,
    P::Args: Args + FromArgMatches,
{
    fn main_with(
        before: impl FnOnce(&P::Args) -> Result<(), String>,
        after: impl FnOnce(&P::Args, &crate::Summary) -> Result<(), String>,
    ) -> ExitCode {
        quiet_headless_vulkan();
        // `about` last: augmenting with a documented args struct would replace it.
        let command = StdArgs::augment_args(P::Args::augment_args(clap::Command::new(P::NAME)));
        let command = command.about(P::graph().doc);
        let matches = command.get_matches();
        let parsed = StdArgs::from_arg_matches(&matches)
            .and_then(|std| Ok((std, P::Args::from_arg_matches(&matches)?)));
        let (std, args) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => e.exit(),
        };
        match std.graph {
            Some(GraphFormat::Mermaid) => {
                print!("{}", P::graph().mermaid());
                return ExitCode::SUCCESS;
            }
            Some(GraphFormat::Dot) => {
                print!("{}", P::graph().dot());
                return ExitCode::SUCCESS;
            }
            None => {}
        }
        init_logging(std.quiet);
        if let Err(error) = before(&args) {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
        let config = std.config();
        watch_signals(P::NAME, &config.stop);
        let summary = match run_pipeline::<P>(&args, &config) {
            Ok(summary) => summary,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        };
        // A split run's summary is the job's, the same in every process: process 0 prints it.
        if !std.quiet && std.process == 0 {
            eprint!("{summary}");
        }
        if let Err(error) = after(&args, &summary) {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
        match summary.stopped_by {
            // The shell's convention: 128 + the signal's number (130, 143).
            Some(signal) => ExitCode::from(128u8.saturating_add(signal as u8)),
            None => ExitCode::SUCCESS,
        }
    }
}

/// SIGINT or SIGTERM: stop reading and finish what is in flight; a second one: exit at once
/// (removing the temporary files of unfinished outputs, so the outputs are untouched).
#[cfg(unix)]
fn watch_signals(name: &'static str, stop: &crate::context::StopSignal) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(error) => {
            tracing::warn!("signals will stop the run at once: cannot watch them ({error})");
            return;
        }
    };
    let stop = stop.clone();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let what = crate::summary::signal_name(signal);
            if stop.requested().is_some() {
                crate::io::remove_partial_outputs();
                eprintln!("{name}: {what} again: exiting now; outputs not written");
                std::process::exit(128 + signal);
            }
            eprintln!(
                "{name}: {what}: stopping: finishing what was read (send it again to exit at once)"
            );
            stop.stop(signal);
        }
    });
}

#[cfg(not(unix))]
fn watch_signals(_: &'static str, _: &crate::context::StopSignal) {}

/// Mesa's Vulkan device-select layer looks for a Wayland compositor while GPUs are enumerated
/// (`--device auto` probes them), and where there is no session (`XDG_RUNTIME_DIR` unset: a
/// server, a container, CI) libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set"
/// twice: noise, and the first thing a newcomer would see. Without a session there is no display
/// to pick a device by, so the layer is switched off (`NODEVICE_SELECT=1`) unless it was set up
/// (`MESA_VK_DEVICE_SELECT`). Called first thing in `main`, before any thread is started.
fn quiet_headless_vulkan() {
    let unset = |name: &str| std::env::var_os(name).is_none();
    if unset("XDG_RUNTIME_DIR") && unset("MESA_VK_DEVICE_SELECT") && unset("NODEVICE_SELECT") {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

fn init_logging(quiet: bool) {
    // wgpu's OpenGL fallback is probed on machines without a Vulkan GPU; on a headless one it
    // logs an EGL "failed to load driver" error that only means "no GPU there". `TANDEM_LOG`
    // replaces the whole filter, so it can still be seen.
    let default = if quiet {
        "error,wgpu_hal::gles=off"
    } else {
        "info,wgpu_hal::gles=off"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
