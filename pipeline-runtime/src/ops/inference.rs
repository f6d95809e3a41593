use std::sync::Arc;
use std::time::Instant;

use crate::exec::Shared;
use crate::inference::{InferenceMetrics, ModelHandler, PredictionResult};
use crate::panic::guard;
use crate::push::{Flow, Pos, Push, StageCell};

/// `run_inference(handler)`: collects elements into batches, runs the model on each, and passes
/// on one `PredictionResult` per element.
pub struct Inference<H: ModelHandler, N> {
    cell: StageCell,
    handler: H,
    model: H::Model,
    model_id: Arc<str>,
    max_batch: usize,
    pending: Vec<(Pos, H::Input, H::Prepared)>,
    metrics: InferenceMetrics,
    next: N,
}

impl<H: ModelHandler> Inference<H, ()> {
    pub(crate) fn new(id: u32, handler: H, model: H::Model, metrics: InferenceMetrics) -> Self {
        let max_batch = handler.batching().max_batch.max(1);
        Self {
            cell: StageCell::new(id),
            model_id: Arc::from(metrics.model_id.as_str()),
            handler,
            model,
            max_batch,
            pending: Vec::with_capacity(max_batch),
            metrics,
            next: (),
        }
    }

    pub fn then<N>(self, next: N) -> Inference<H, N> {
        Inference {
            cell: self.cell,
            handler: self.handler,
            model: self.model,
            model_id: self.model_id,
            max_batch: self.max_batch,
            pending: self.pending,
            metrics: self.metrics,
            next,
        }
    }
}

impl<H: ModelHandler, N> Inference<H, N> {
    pub(crate) fn metrics(&self) -> &InferenceMetrics {
        &self.metrics
    }
}

impl<H, N> Inference<H, N>
where
    H: ModelHandler,
    N: Push<PredictionResult<H::Input, H::Inference>>,
{
    fn run_batch(&mut self, cx: &Shared) {
        if self.pending.is_empty() {
            return;
        }
        let mut examples = Vec::with_capacity(self.pending.len());
        let mut prepared = Vec::with_capacity(self.pending.len());
        for (pos, input, ready) in self.pending.drain(..) {
            examples.push((pos, input));
            prepared.push(ready);
        }
        let size = examples.len();
        let started = Instant::now();
        let (handler, model) = (&self.handler, &mut self.model);
        let outcome = guard(|| handler.infer(model, prepared));
        self.metrics.busy += started.elapsed();
        self.metrics.batches += 1;
        self.metrics.largest_batch = self.metrics.largest_batch.max(size);
        let failure = match outcome {
            Ok(Ok(outputs)) if outputs.len() == size => {
                self.metrics.inferences += size as u64;
                for ((pos, example), inference) in examples.into_iter().zip(outputs) {
                    let result = PredictionResult {
                        example,
                        inference,
                        model_id: self.model_id.clone(),
                    };
                    self.next.push(result, pos, cx);
                }
                return;
            }
            Ok(Ok(outputs)) => format!(
                "the model returned {} inferences for a batch of {size}",
                outputs.len()
            ),
            Ok(Err(error)) => error,
            Err(panic) => panic,
        };
        self.metrics.failed_batches += 1;
        for (pos, _) in examples {
            self.cell.dead(
                cx,
                pos,
                format!(
                    "model `{}` failed on this element's batch: {failure}",
                    self.model_id
                ),
            );
        }
    }
}

impl<H, N> Push<H::Input> for Inference<H, N>
where
    H: ModelHandler,
    N: Push<PredictionResult<H::Input, H::Inference>>,
{
    #[inline]
    fn push(&mut self, item: H::Input, pos: Pos, cx: &Shared) {
        self.cell.count();
        match guard(|| self.handler.prepare(&item)) {
            Ok(Ok(ready)) => {
                self.pending.push((pos, item, ready));
                if self.pending.len() >= self.max_batch {
                    self.run_batch(cx);
                }
            }
            Ok(Err(error)) => {
                self.cell
                    .dead(cx, pos, format!("preparing the input failed: {error}"))
            }
            Err(panic) => self.cell.dead(cx, pos, panic),
        }
    }

    fn flush(&mut self, cx: &Shared, partial: bool) -> Flow {
        if partial {
            self.run_batch(cx);
        }
        self.cell.publish(cx);
        cx.publish_inference(&self.metrics);
        self.next.flush(cx, partial)
    }

    fn finish(&mut self, cx: &Shared) -> crate::Result<()> {
        self.run_batch(cx);
        self.cell.publish(cx);
        cx.publish_inference(&self.metrics);
        self.next.finish(cx)
    }
}

/// Loads a handler's model, timing it; the error names the model and the device.
pub(crate) fn load<H: ModelHandler>(
    id: u32,
    handler: H,
    device: crate::inference::DeviceChoice,
) -> crate::Result<Inference<H, ()>> {
    let model_id = handler.model_id();
    let started = Instant::now();
    let (model, device_name) = handler.load(device).map_err(|error| {
        crate::Error::Config(format!(
            "cannot load model `{model_id}` (--device {device}): {error}"
        ))
    })?;
    let metrics = InferenceMetrics {
        stage: id,
        model_id,
        device: device_name,
        load_time: started.elapsed(),
        ..InferenceMetrics::default()
    };
    Ok(Inference::new(id, handler, model, metrics))
}
