//! Per-model figures: counters, histograms of batch size, batch latency and queue wait, for the
//! summary and the Prometheus text endpoint (`--metrics-addr`).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A Prometheus-style histogram: counts per upper bound (cumulative when rendered), sum, count.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last is above every bound.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

/// Batch sizes.
pub const SIZE_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];
/// Seconds, from 100 µs to 10 s.
pub const SECONDS_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        let at = self.bounds.partition_point(|&b| b < value);
        self.counts[at] += 1;
        self.sum += value;
        self.count += 1;
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// The upper bound of the bucket holding quantile `q` (0..=1): "at most this".
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (at, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(self.bounds.get(at).copied().unwrap_or(f64::INFINITY));
            }
        }
        None
    }
}

/// What one `run_inference` stage did.
#[derive(Clone, Debug, PartialEq)]
pub struct InferenceMetrics {
    pub stage: u32,
    /// The handler's name.
    pub name: String,
    /// The id of the model now serving (its latest version after a hot swap; for keyed models,
    /// every key's id).
    pub model_id: String,
    pub device: String,
    pub replicas: usize,
    /// Time to load the model the first time (all replicas).
    pub load_time: Duration,
    /// Elements the model answered.
    pub inferences: u64,
    /// Batches the model was given, including those that failed or timed out.
    pub batches: u64,
    /// Batches whose `infer` returned an error, panicked or gave the wrong number of results.
    pub failed_batches: u64,
    /// Batches given up after the timeout.
    pub timeouts: u64,
    /// Elements whose pre-processing failed.
    pub prepare_failures: u64,
    /// Hot swaps done, and reloads of a changed weights file that failed (the old model stayed).
    pub swaps: u64,
    pub swap_failures: u64,
    /// Replicas loaded again after a timeout.
    pub replacements: u64,
    /// Total time in `infer`, over all batches.
    pub busy: Duration,
    pub largest_batch: usize,
    pub batch_size: Histogram,
    /// Seconds per batch in `infer`.
    pub latency: Histogram,
    /// Seconds from an element reaching the stage to its batch starting.
    pub queue_wait: Histogram,
}

impl Default for InferenceMetrics {
    fn default() -> Self {
        Self {
            stage: 0,
            name: String::new(),
            model_id: String::new(),
            device: String::new(),
            replicas: 0,
            load_time: Duration::ZERO,
            inferences: 0,
            batches: 0,
            failed_batches: 0,
            timeouts: 0,
            prepare_failures: 0,
            swaps: 0,
            swap_failures: 0,
            replacements: 0,
            busy: Duration::ZERO,
            largest_batch: 0,
            batch_size: Histogram::new(SIZE_BOUNDS),
            latency: Histogram::new(SECONDS_BOUNDS),
            queue_wait: Histogram::new(SECONDS_BOUNDS),
        }
    }
}

impl InferenceMetrics {
    pub fn mean_batch(&self) -> f64 {
        self.batch_size.mean()
    }

    pub fn mean_latency(&self) -> Duration {
        Duration::from_secs_f64(self.latency.mean())
    }
}

/// A stage's metrics, updated by its dispatcher and read by the endpoint and the summary.
pub(crate) type MetricsCell = Arc<Mutex<InferenceMetrics>>;

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the Prometheus text exposition format (version 0.0.4).
pub(crate) fn render_prometheus(
    pipeline: &str,
    stages: &[(String, u64, u64)],
    models: &[InferenceMetrics],
    queues: &[(
        String,
        Option<usize>,
        std::sync::Arc<crate::queue::QueueGauge>,
    )],
) -> String {
    let mut out = String::new();
    let p = escape(pipeline);
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    type Gauge = fn(&crate::queue::QueueGauge) -> u64;
    let gauges: [(&str, &str, Gauge); 3] = [
        (
            "tandem_queue_batches",
            "Batches in the queue, as of its last send or receive.",
            |q| q.depth(),
        ),
        (
            "tandem_queue_peak_batches",
            "The most batches the queue has held.",
            |q| q.peak(),
        ),
        (
            "tandem_queue_capacity_batches",
            "The batches the queue holds at most.",
            |q| q.capacity,
        ),
    ];
    for (name, help, get) in gauges {
        family(&mut out, name, "gauge", help);
        for (label, worker, q) in queues {
            // In a split run, each worker has its own queues.
            let worker = worker.map_or(String::new(), |w| format!(",worker=\"{w}\""));
            let _ = writeln!(
                out,
                "{name}{{pipeline=\"{p}\",stage=\"{}\",queue=\"{}\"{worker}}} {}",
                escape(label),
                q.queue,
                get(q)
            );
        }
    }
    family(
        &mut out,
        "tandem_stage_input_total",
        "counter",
        "Elements that entered the stage (published between chunks).",
    );
    for (label, input, _) in stages {
        let _ = writeln!(
            out,
            "tandem_stage_input_total{{pipeline=\"{p}\",stage=\"{}\"}} {input}",
            escape(label)
        );
    }
    family(
        &mut out,
        "tandem_stage_dead_letters_total",
        "counter",
        "Elements the stage sent to the dead letters.",
    );
    for (label, _, dead) in stages {
        let _ = writeln!(
            out,
            "tandem_stage_dead_letters_total{{pipeline=\"{p}\",stage=\"{}\"}} {dead}",
            escape(label)
        );
    }
    type Get = fn(&InferenceMetrics) -> f64;
    let scalars: [(&str, &str, &str, Get); 11] = [
        (
            "tandem_inference_total",
            "counter",
            "Elements the model answered.",
            |m| m.inferences as f64,
        ),
        (
            "tandem_inference_batches_total",
            "counter",
            "Batches given to the model.",
            |m| m.batches as f64,
        ),
        (
            "tandem_inference_failed_batches_total",
            "counter",
            "Batches that failed (error, panic, wrong count).",
            |m| m.failed_batches as f64,
        ),
        (
            "tandem_inference_timeouts_total",
            "counter",
            "Batches given up after the timeout.",
            |m| m.timeouts as f64,
        ),
        (
            "tandem_inference_prepare_failures_total",
            "counter",
            "Inputs whose pre-processing failed.",
            |m| m.prepare_failures as f64,
        ),
        (
            "tandem_inference_swaps_total",
            "counter",
            "Hot swaps of the model.",
            |m| m.swaps as f64,
        ),
        (
            "tandem_inference_swap_failures_total",
            "counter",
            "Reloads of a changed weights file that failed.",
            |m| m.swap_failures as f64,
        ),
        (
            "tandem_inference_replacements_total",
            "counter",
            "Replicas loaded again after a timeout.",
            |m| m.replacements as f64,
        ),
        (
            "tandem_inference_replicas",
            "gauge",
            "Replicas of the model.",
            |m| m.replicas as f64,
        ),
        (
            "tandem_inference_load_seconds",
            "gauge",
            "Time to load the model at start-up.",
            |m| m.load_time.as_secs_f64(),
        ),
        (
            "tandem_inference_busy_seconds_total",
            "counter",
            "Time spent in the model.",
            |m| m.busy.as_secs_f64(),
        ),
    ];
    let labels = |m: &InferenceMetrics| {
        format!(
            "pipeline=\"{p}\",stage=\"{}\",model=\"{}\",model_id=\"{}\",device=\"{}\"",
            m.stage,
            escape(&m.name),
            escape(&m.model_id),
            escape(&m.device)
        )
    };
    for (name, kind, help, get) in scalars {
        family(&mut out, name, kind, help);
        for m in models {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(m), get(m));
        }
    }
    type Hist = fn(&InferenceMetrics) -> &Histogram;
    let histograms: [(&str, &str, Hist); 3] = [
        ("tandem_inference_batch_size", "Elements per batch.", |m| {
            &m.batch_size
        }),
        (
            "tandem_inference_batch_seconds",
            "Time the model took per batch.",
            |m| &m.latency,
        ),
        (
            "tandem_inference_queue_wait_seconds",
            "Time from an element reaching the stage to its batch starting.",
            |m| &m.queue_wait,
        ),
    ];
    for (name, help, get) in histograms {
        family(&mut out, name, "histogram", help);
        for m in models {
            let h = get(m);
            let l = labels(m);
            let mut cumulative = 0;
            for (at, n) in h.counts.iter().enumerate() {
                cumulative += n;
                let le = h
                    .bounds
                    .get(at)
                    .map_or("+Inf".to_owned(), |b| b.to_string());
                let _ = writeln!(out, "{name}_bucket{{{l},le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(
                out,
                "{name}_sum{{{l}}} {}\n{name}_count{{{l}}} {}",
                h.sum, h.count
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let mut h = Histogram::new(SIZE_BOUNDS);
        for v in [1.0, 3.0, 4.0, 100.0, 5000.0] {
            h.observe(v);
        }
        assert_eq!(h.counts[0], 1); // 1 <= 1
        assert_eq!(h.counts[2], 2); // 3 and 4 <= 4
        assert_eq!(h.counts[7], 1); // 100 <= 128
        assert_eq!(*h.counts.last().unwrap(), 1); // above 1024
        assert_eq!(h.quantile_bound(0.5), Some(4.0));
        assert_eq!(h.quantile_bound(1.0), Some(f64::INFINITY));
        assert_eq!(h.count, 5);
    }

    #[test]
    fn renders_cumulative_buckets_and_escaped_labels() {
        let mut m = InferenceMetrics {
            name: "a \"quoted\" model".into(),
            ..InferenceMetrics::default()
        };
        m.batch_size.observe(3.0);
        m.batch_size.observe(30.0);
        let gauge = crate::queue::QueueGauge::new(1, "input", 16);
        gauge.sample(3);
        gauge.sample(1);
        let text = render_prometheus(
            "P",
            &[("read".into(), 7, 1)],
            &[m],
            &[("merge(a, b)".into(), None, gauge)],
        );
        assert!(text.contains(
            "tandem_queue_batches{pipeline=\"P\",stage=\"merge(a, b)\",queue=\"input\"} 1\n"
        ));
        assert!(text.contains(
            "tandem_queue_peak_batches{pipeline=\"P\",stage=\"merge(a, b)\",queue=\"input\"} 3\n"
        ));
        assert!(text.contains(
            "tandem_queue_capacity_batches{pipeline=\"P\",stage=\"merge(a, b)\",queue=\"input\"} 16\n"
        ));
        assert!(
            text.contains("tandem_stage_input_total{pipeline=\"P\",stage=\"read\"} 7"),
            "{text}"
        );
        assert!(text.contains("model=\"a \\\"quoted\\\" model\""), "{text}");
        assert!(text.contains("le=\"4\"} 1\n"), "{text}");
        assert!(text.contains("le=\"32\"} 2\n"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 2\n"), "{text}");
        assert!(
            text.contains("tandem_inference_batch_size_count{"),
            "{text}"
        );
    }
}
