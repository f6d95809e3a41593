// The models are keyed by region name, but the stream is keyed by a numeric region id.
use tandem::inference::{keyed, DeviceRequest, Loaded, ModelHandler};
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

pub struct Query {
    region: u32,
    text: String,
}

pipeline! {
    ByRegion(args: Collector<f32>) {
        read(Memory::new(vec![Query { region: 1, text: "shoes".into() }]))
            -> map(|q: Query| (q.region, q.text))
            -> run_inference(keyed([("eu", Ranker), ("us", Ranker)]))
            -> map(|p: PredictionResult<(&str, String), f32>| p.inference)
            -> write(args.clone());
    }
}

fn main() {}
