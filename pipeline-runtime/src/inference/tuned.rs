//! Serving options set on any handler: `handler.replicas(2).timeout(..).max_wait(..)`.

use std::path::PathBuf;
use std::time::Duration;

use super::{Batching, DeviceRequest, Loaded, ModelHandler, Serving};

/// A handler with some of its batching and serving options replaced; see [`HandlerExt`].
#[derive(Clone, Debug)]
pub struct Tuned<H> {
    inner: H,
    batching: Batching,
    serving: Serving,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($value:ty) => |$b:ident, $s:ident, $v:ident| $set:expr;)*) => {
        /// Options for `run_inference`: each returns the handler
        /// with that option replaced.
        pub trait HandlerExt: ModelHandler + Sized {
            $($(#[$doc])* fn $name(self, value: $value) -> Tuned<Self> {
                Tuned::from(self).$name(value)
            })*

            /// Lets `--device gpu` load the model on a software adapter (Mesa's lavapipe) where
            /// there is no GPU: for testing the wgpu path, not for serving. See
            /// [`DeviceRequest`].
            fn allow_software_gpu(self) -> Tuned<Self> {
                Tuned::from(self).allow_software_gpu()
            }
        }

        impl<H: ModelHandler> Tuned<H> {
            $($(#[$doc])* pub fn $name(mut self, $v: $value) -> Self {
                let ($b, $s) = (&mut self.batching, &mut self.serving);
                let _ = (&$b, &$s);
                $set;
                self
            })*
        }
    };
}

setters! {
    /// The largest batch handed to the model.
    max_batch(usize) => |b, s, v| b.max_batch = v.max(1);
    /// How long the first element of a batch waits for the batch to fill.
    max_wait(Duration) => |b, s, v| b.max_wait = v;
    /// The smallest batch run before the input ends.
    min_batch(usize) => |b, s, v| b.min_batch = v.max(1);
    /// Copies of the model, each on its own thread; a batch goes to the least busy.
    replicas(usize) => |b, s, v| s.replicas = v.max(1);
    /// Gives up a batch that has not come back after this long (its elements are dead-lettered
    /// with the reason) and replaces the replica that ran it.
    timeout(Duration) => |b, s, v| s.timeout = Some(v);
    /// Watches a weights file and swaps the model when it changes (the handler's `load` must read
    /// that file).
    watch(PathBuf) => |b, s, v| s.watch = Some(v);
    /// How often the watched file is looked at (100 ms by default).
    poll(Duration) => |b, s, v| s.poll = v;
}

impl<H: ModelHandler> HandlerExt for H {}

impl<H: ModelHandler> From<H> for Tuned<H> {
    fn from(inner: H) -> Self {
        Self {
            batching: inner.batching(),
            serving: inner.serving(),
            inner,
        }
    }
}

impl<H: ModelHandler> Tuned<H> {
    /// See [`HandlerExt::allow_software_gpu`].
    pub fn allow_software_gpu(mut self) -> Self {
        self.serving.software_gpu = true;
        self
    }

    /// The handler inside.
    pub fn inner(&self) -> &H {
        &self.inner
    }
}

impl<H: ModelHandler> ModelHandler for Tuned<H> {
    type Input = H::Input;
    type Prepared = H::Prepared;
    type Inference = H::Inference;
    type Model = H::Model;

    fn name(&self) -> String {
        self.inner.name()
    }
    fn batching(&self) -> Batching {
        self.batching
    }
    fn serving(&self) -> Serving {
        self.serving.clone()
    }
    fn load(&self, device: DeviceRequest) -> Result<Loaded<H::Model>, String> {
        self.inner.load(device)
    }
    fn prepare(&self, input: &H::Input) -> Result<H::Prepared, String> {
        self.inner.prepare(input)
    }
    fn group(&self, prepared: &H::Prepared) -> usize {
        self.inner.group(prepared)
    }
    fn infer(
        &self,
        model: &mut H::Model,
        batch: Vec<H::Prepared>,
    ) -> Result<Vec<H::Inference>, String> {
        self.inner.infer(model, batch)
    }
}
