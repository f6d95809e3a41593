//! `run_inference(Carry::new(handler))`: a model handler whose inputs come with a tag.

use std::marker::PhantomData;

use tandem::inference::{Batching, DeviceRequest, Loaded, ModelHandler, Serving};

/// Runs `H` on the second half of `(tag, input)` pairs; the results keep the whole pair as their
/// `example`, so whatever the tag says (which image a caption belongs to, when a request
/// arrived) comes out beside the inference. Batching and serving are `H`'s.
pub struct Carry<C, H> {
    inner: H,
    tag: PhantomData<fn() -> C>,
}

impl<C, H: Clone> Clone for Carry<C, H> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone())
    }
}

impl<C, H> Carry<C, H> {
    pub fn new(inner: H) -> Self {
        Self {
            inner,
            tag: PhantomData,
        }
    }

    pub fn inner(&self) -> &H {
        &self.inner
    }
}

impl<C: Send + 'static, H: ModelHandler> ModelHandler for Carry<C, H> {
    type Input = (C, H::Input);
    type Prepared = H::Prepared;
    type Inference = H::Inference;
    type Model = H::Model;

    fn name(&self) -> String {
        self.inner.name()
    }

    fn batching(&self) -> Batching {
        self.inner.batching()
    }

    fn serving(&self) -> Serving {
        self.inner.serving()
    }

    fn load(&self, device: DeviceRequest) -> Result<Loaded<H::Model>, String> {
        self.inner.load(device)
    }

    fn prepare(&self, (_, input): &Self::Input) -> Result<H::Prepared, String> {
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
