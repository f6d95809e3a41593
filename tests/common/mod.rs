//! Helpers shared by integration tests: running a pipeline, waiting for a condition, stand-in
//! models (so tests of `run_inference` need no Burn; the real Burn model runs the same way in
//! `models/tests/`), and building and measuring the example binaries.

// Each test file that shares this module uses only some of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tandem::inference::{
    Batching, DeviceChoice, DeviceRequest, Loaded, ModelHandler, PredictionResult,
};
use tandem::prelude::*;

/// Runs `P` with the default configuration and returns its summary; panics with the reason if the
/// run fails (a run whose counts do not add up fails too: `run_pipeline` checks every run).
pub fn run_checked<P: Pipeline>(args: &P::Args) -> Summary {
    tandem::job::run_pipeline::<P>(args, &RunConfig::default())
        .unwrap_or_else(|e| panic!("running {} failed: {e}", P::NAME))
}

/// Waits until `done` (polling), at most `limit`; says whether it happened.
pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

/// The stand-in model of the `run_inference` tests (batching, replicas, model failures, keyed
/// models, hot swap, metrics).
///
/// Multiplies by a factor (3, or read from a weights file); fails a batch holding `fail_on`,
/// panics on one holding 666, refuses to prepare negative numbers, sleeps on a batch holding `slow.0`, and
/// records what it saw.
#[derive(Clone)]
pub struct Scale {
    pub max_batch: usize,
    pub factor: i64,
    pub weights: Option<PathBuf>,
    pub loads_on: Option<DeviceChoice>,
    pub fail_on: Option<i64>,
    /// From the batch holding this number on, every batch fails: a device lost mid-run.
    pub lost_from: Option<(i64, Arc<AtomicUsize>)>,
    pub slow: Option<(i64, Duration)>,
    /// Blocks a batch holding this number until the flag is set.
    pub gate: Option<(i64, Arc<AtomicUsize>)>,
    pub batches: Arc<Mutex<Vec<Vec<i64>>>>,
    /// Inputs prepared so far, and that count when each batch started.
    pub prepared: Arc<AtomicUsize>,
    pub prepared_at_start: Arc<Mutex<Vec<usize>>>,
    pub threads: Arc<Mutex<Vec<String>>>,
    pub loads: Arc<AtomicUsize>,
    pub running: Arc<AtomicUsize>,
    pub most_running: Arc<AtomicUsize>,
}

impl Scale {
    pub fn new(max_batch: usize) -> Self {
        Self {
            max_batch,
            factor: 3,
            weights: None,
            loads_on: None,
            fail_on: None,
            lost_from: None,
            slow: None,
            gate: None,
            batches: Arc::default(),
            prepared: Arc::default(),
            prepared_at_start: Arc::default(),
            threads: Arc::default(),
            loads: Arc::default(),
            running: Arc::default(),
            most_running: Arc::default(),
        }
    }

    pub fn sizes(&self) -> Vec<usize> {
        self.batches.lock().unwrap().iter().map(Vec::len).collect()
    }
}

impl ModelHandler for Scale {
    type Input = i64;
    type Prepared = i64;
    type Inference = i64;
    type Model = i64;

    fn name(&self) -> String {
        "scale".into()
    }

    fn batching(&self) -> Batching {
        Batching {
            max_batch: self.max_batch,
            ..Batching::default()
        }
    }

    fn load(&self, device: DeviceRequest) -> Result<Loaded<i64>, String> {
        self.loads.fetch_add(1, SeqCst);
        if let Some(only) = self.loads_on {
            if only != device.choice {
                return Err(format!("this model only runs on {only}"));
            }
        }
        let factor = match &self.weights {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
                text.trim()
                    .parse()
                    .map_err(|_| format!("`{}` holds no factor: {text:?}", path.display()))?
            }
            None => self.factor,
        };
        Ok(Loaded::new(
            factor,
            format!("{device}"),
            format!("scale@{factor}"),
        ))
    }

    fn prepare(&self, input: &i64) -> Result<i64, String> {
        self.prepared.fetch_add(1, SeqCst);
        if *input < 0 {
            Err(format!("{input} is negative"))
        } else {
            Ok(*input)
        }
    }

    fn infer(&self, factor: &mut i64, batch: Vec<i64>) -> Result<Vec<i64>, String> {
        let at_start = self.prepared.load(SeqCst);
        self.prepared_at_start.lock().unwrap().push(at_start);
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most_running.fetch_max(now, SeqCst);
        self.batches.lock().unwrap().push(batch.clone());
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        self.threads.lock().unwrap().push(name);
        if let Some((trigger, pause)) = self.slow {
            if trigger < 0 || batch.contains(&trigger) {
                std::thread::sleep(pause);
            }
        }
        if let Some((trigger, open)) = &self.gate {
            if batch.contains(trigger) {
                wait_for(Duration::from_secs(20), || open.load(SeqCst) > 0);
            }
        }
        self.running.fetch_sub(1, SeqCst);
        if self.fail_on.is_some_and(|x| batch.contains(&x)) {
            return Err("unlucky batch".into());
        }
        if let Some((from, lost)) = &self.lost_from {
            if batch.contains(from) {
                lost.store(1, SeqCst);
            }
            if lost.load(SeqCst) > 0 {
                return Err("device lost: the GPU stopped answering".into());
            }
        }
        if batch.contains(&666) {
            panic!("the model fell over");
        }
        Ok(batch.iter().map(|x| x * *factor).collect())
    }
}

type Items = Box<dyn Iterator<Item = i64> + Send>;

/// What the pipelines below read, the handler they run, and where their results go.
pub struct Args<H> {
    pub input: Mutex<Option<Items>>,
    pub model: H,
    pub out: Collector<PredictionResult<i64, i64>>,
}

pipeline! {
    Scaled(args: Args<Scale>) {
        read(Memory::new(args.input.lock().unwrap().take().unwrap()))
            -> run_inference(args.model.clone())
            -> write(args.out.clone());
    }
}

pipeline! {
    Tuned(args: Args<tandem::inference::Tuned<Scale>>) {
        read(Memory::new(args.input.lock().unwrap().take().unwrap()))
            -> run_inference(args.model.clone())
            -> write(args.out.clone());
    }
}

fn args<H>(input: impl Iterator<Item = i64> + Send + 'static, model: H) -> Args<H> {
    Args {
        input: Mutex::new(Some(Box::new(input))),
        model,
        out: Collector::new(),
    }
}

/// Runs `input` through `model` with `config`; the run's result is the caller's to check.
pub fn run(
    input: Vec<i64>,
    model: Scale,
    config: &RunConfig,
) -> (Args<Scale>, tandem::Result<Summary>) {
    let args = args(input.into_iter(), model);
    let summary = Scaled::run_blocking(&args, config);
    (args, summary)
}

/// Runs `input` through a tuned `model` (batching, replicas, timeout, hot swap) with the default
/// configuration; the run must succeed.
pub fn run_tuned(
    input: impl Iterator<Item = i64> + Send + 'static,
    model: tandem::inference::Tuned<Scale>,
) -> (Args<tandem::inference::Tuned<Scale>>, Summary) {
    let args = args(input, model);
    let summary = Tuned::run_blocking(&args, &RunConfig::default()).expect("the run succeeds");
    (args, summary)
}

/// A plain stand-in model: named `name`, batches of up to `max_batch`, and `infer` answering
/// each batch (one output per input, in order). It loads as `{name}-v1` on the CPU; every input
/// prepares as itself.
pub struct StandIn<I, O> {
    name: &'static str,
    max_batch: usize,
    infer: Box<dyn Fn(Vec<I>) -> Vec<O> + Send + Sync>,
}

impl<I, O> StandIn<I, O> {
    pub fn new(
        name: &'static str,
        max_batch: usize,
        infer: impl Fn(Vec<I>) -> Vec<O> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            max_batch,
            infer: Box::new(infer),
        }
    }
}

impl<I, O> ModelHandler for StandIn<I, O>
where
    I: Clone + Send + 'static,
    O: Send + 'static,
{
    type Input = I;
    type Prepared = I;
    type Inference = O;
    type Model = ();

    fn name(&self) -> String {
        self.name.into()
    }

    fn batching(&self) -> Batching {
        Batching {
            max_batch: self.max_batch,
            ..Batching::default()
        }
    }

    fn load(&self, _: DeviceRequest) -> Result<Loaded<()>, String> {
        Ok(Loaded::new((), "cpu", format!("{}-v1", self.name)))
    }

    fn prepare(&self, input: &I) -> Result<I, String> {
        Ok(input.clone())
    }

    fn infer(&self, _: &mut (), batch: Vec<I>) -> Result<Vec<O>, String> {
        Ok((self.infer)(batch))
    }
}

/// The path of a built example binary (`cargo test` builds examples next to the test binaries;
/// `cargo test --test NAME` does not, so it is built here once per test process, never stale).
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--workspace", "--example", name])
            .status()
            .unwrap();
        assert!(status.success());
        built.push(name.to_owned());
    }
    path
}

/// Runs `command` to the end, checks that it exited with 0, and returns its peak RSS in KiB
/// (from `wait4`'s rusage: `Child::wait` does not give it).
#[cfg(target_os = "linux")]
pub fn peak_rss_of(command: &mut Command) -> u64 {
    // Reaped by `wait4` below.
    #[allow(clippy::zombie_processes)]
    let child = command.spawn().unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `status` and `usage` are valid for writes.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status}"
    );
    usage.ru_maxrss as u64
}

/// `n` free ports of 127.0.0.1 (bound together so that they differ, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A hostfile in `dir` for `processes` processes on free ports of 127.0.0.1.
pub fn hostfile(dir: &Path, processes: usize) -> PathBuf {
    let hostfile = dir.join("hosts");
    let hosts: String = free_ports(processes)
        .iter()
        .map(|p| format!("127.0.0.1:{p}\n"))
        .collect();
    std::fs::write(&hostfile, hosts).unwrap();
    hostfile
}

/// Kills every child still running when dropped (a failed assertion included).
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Once `ready`, kills the second of two processes; checks that the first fails within 10 s,
/// naming the killed one.
pub fn kill_the_second_when(mut children: Children, ready: impl FnMut() -> bool) {
    assert!(
        wait_for(Duration::from_secs(60), ready),
        "the run did not get under way"
    );
    let mut killed = children.0.remove(1);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let killed_at = Instant::now();
    let output = wait(children.0.remove(0), Duration::from_secs(10));
    assert!(killed_at.elapsed() < Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("process 1 of the run stopped"), "{stderr}");
}

/// Waits for `child` to exit, at most `limit` (then kills it and fails).
pub fn wait(child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    let mut child = child;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "a process did not exit within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
