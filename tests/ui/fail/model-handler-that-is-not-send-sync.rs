// The stage's threads share the handler, so it must be `Send + Sync`: a handler holding an
// `Rc` is a model handler, but not one a stage can run.
use std::rc::Rc;

use tandem::inference::{DeviceRequest, Loaded, ModelHandler};
use tandem::prelude::*;

struct Cached {
    vocabulary: Rc<Vec<String>>,
}

impl ModelHandler for Cached {
    type Input = String;
    type Prepared = usize;
    type Inference = f32;
    type Model = ();
    fn name(&self) -> String {
        "cached".into()
    }
    fn load(&self, _: DeviceRequest) -> Result<Loaded<()>, String> {
        Ok(Loaded::new((), "cpu", "cached@1"))
    }
    fn prepare(&self, text: &String) -> Result<usize, String> {
        Ok(self.vocabulary.iter().position(|w| w == text).unwrap_or(0))
    }
    fn infer(&self, _: &mut (), batch: Vec<usize>) -> Result<Vec<f32>, String> {
        Ok(batch.iter().map(|&i| i as f32).collect())
    }
}

pipeline! {
    NotShared(args: Collector<f32>) {
        read(Memory::new(vec![String::from("word")]))
            -> run_inference(Cached { vocabulary: Rc::new(vec![]) })
            -> map(|p: PredictionResult<String, f32>| p.inference)
            -> write(args.clone());
    }
}

fn main() {}
