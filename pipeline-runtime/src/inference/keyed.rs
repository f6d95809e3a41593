//! Keyed models (Beam's `KeyedModelHandler` with a key-to-model mapping): one handler per key,
//! each model loaded once, every element run by the model of its key.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;

use super::{Batching, DeviceRequest, Loaded, ModelHandler, Serving};

/// `run_inference(keyed([("a", model_a), ("b", model_b)]))` on a stream of `(key, input)` (what
/// `key_by` makes): each element is run by the model of its key, batches never mix keys, and the
/// results carry the id of the model that answered. An element whose key has no model goes to the
/// dead letters. Batching (the smallest `max_batch` of the handlers) and serving options come from
/// the handlers' defaults; set them on the keyed handler (`keyed(..).replicas(2)`).
pub fn keyed<K, H, I>(models: I) -> Keyed<K, H>
where
    I: IntoIterator<Item = (K, H)>,
    K: Eq + Hash + Clone + Debug + Send + Sync + 'static,
    H: ModelHandler,
{
    let mut handlers: Vec<(K, H)> = Vec::new();
    let mut index = HashMap::new();
    for (key, handler) in models {
        match index.get(&key) {
            // The last handler given for a key wins, as in a map literal.
            Some(&at) => handlers[at] = (key, handler),
            None => {
                index.insert(key.clone(), handlers.len());
                handlers.push((key, handler));
            }
        }
    }
    Keyed { handlers, index }
}

/// See [`keyed`].
pub struct Keyed<K, H> {
    handlers: Vec<(K, H)>,
    index: HashMap<K, usize>,
}

impl<K, H> ModelHandler for Keyed<K, H>
where
    K: Eq + Hash + Clone + Debug + Send + Sync + 'static,
    H: ModelHandler,
{
    type Input = (K, H::Input);
    type Prepared = (usize, H::Prepared);
    type Inference = H::Inference;
    type Model = Vec<H::Model>;

    fn name(&self) -> String {
        let names: Vec<String> = self
            .handlers
            .iter()
            .map(|(k, h)| format!("{k:?}: {}", h.name()))
            .collect();
        format!("keyed({})", names.join(", "))
    }

    fn batching(&self) -> Batching {
        let mut batching = Batching::default();
        if let Some(smallest) = self
            .handlers
            .iter()
            .map(|(_, h)| h.batching())
            .min_by_key(|b| b.max_batch)
        {
            batching = smallest;
        }
        batching
    }

    fn serving(&self) -> Serving {
        Serving::default()
    }

    fn load(&self, device: DeviceRequest) -> Result<Loaded<Self::Model>, String> {
        if self.handlers.is_empty() {
            return Err("`keyed` was given no models".into());
        }
        let mut models = Vec::with_capacity(self.handlers.len());
        let mut ids = Vec::with_capacity(self.handlers.len());
        let mut devices: Vec<String> = Vec::new();
        for (key, handler) in &self.handlers {
            let loaded = handler
                .load(device)
                .map_err(|e| format!("the model for key {key:?} ({}): {e}", handler.name()))?;
            models.push(loaded.model);
            ids.push(
                loaded
                    .ids
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| handler.name()),
            );
            if !devices.contains(&loaded.device) {
                devices.push(loaded.device);
            }
        }
        Ok(Loaded {
            model: models,
            device: devices.join(", "),
            ids,
        })
    }

    fn prepare(&self, (key, input): &Self::Input) -> Result<Self::Prepared, String> {
        let Some(&at) = self.index.get(key) else {
            let known: Vec<String> = self
                .handlers
                .iter()
                .map(|(k, _)| format!("{k:?}"))
                .collect();
            return Err(format!(
                "no model for the key {key:?} (models are keyed {})",
                known.join(", ")
            ));
        };
        self.handlers[at].1.prepare(input).map(|p| (at, p))
    }

    fn group(&self, prepared: &Self::Prepared) -> usize {
        prepared.0
    }

    fn infer(
        &self,
        models: &mut Self::Model,
        batch: Vec<Self::Prepared>,
    ) -> Result<Vec<Self::Inference>, String> {
        let Some(&(at, _)) = batch.first() else {
            return Ok(Vec::new());
        };
        if batch.iter().any(|(g, _)| *g != at) {
            return Err("a batch mixed the inputs of several keys (a bug in tandem)".into());
        }
        let batch = batch.into_iter().map(|(_, p)| p).collect();
        self.handlers[at].1.infer(&mut models[at], batch)
    }
}
