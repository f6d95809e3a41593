// The stage after a model receives the input with what the model said about it, not the bare
// score.
use tandem::inference::{DeviceRequest, Loaded, ModelHandler};
use tandem::prelude::*;

struct Ranker;
impl ModelHandler for Ranker {
    type Input = String;
    type Prepared = String;
    type Inference = f32;
    type Model = ();
    fn name(&self) -> String {
        "ranker".into()
    }
    fn load(&self, _: DeviceRequest) -> Result<Loaded<()>, String> {
        Ok(Loaded::new((), "cpu", "ranker@1"))
    }
    fn prepare(&self, text: &String) -> Result<String, String> {
        Ok(text.clone())
    }
    fn infer(&self, _: &mut (), batch: Vec<String>) -> Result<Vec<f32>, String> {
        Ok(batch.iter().map(|s| s.len() as f32).collect())
    }
}

pipeline! {
    BareScore(args: Collector<f64>) {
        read(Memory::new(vec![String::from("a query")]))
            -> run_inference(Ranker)
            -> map(|score: f32| f64::from(score))
            -> write(args.clone());
    }
}

fn main() {}
