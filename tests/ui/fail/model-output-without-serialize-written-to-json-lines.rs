// A model's results written to a JSON lines file: its inference type must be `Serialize`.
use tandem::inference::{DeviceRequest, Loaded, ModelHandler};
use tandem::prelude::*;

pub struct Embedding(Vec<f32>);

struct Embedder;
impl ModelHandler for Embedder {
    type Input = String;
    type Prepared = String;
    type Inference = Embedding;
    type Model = ();
    fn name(&self) -> String {
        "embedder".into()
    }
    fn load(&self, _: DeviceRequest) -> Result<Loaded<()>, String> {
        Ok(Loaded::new((), "cpu", "embedder@1"))
    }
    fn prepare(&self, text: &String) -> Result<String, String> {
        Ok(text.clone())
    }
    fn infer(&self, _: &mut (), batch: Vec<String>) -> Result<Vec<Embedding>, String> {
        Ok(batch.iter().map(|s| Embedding(vec![s.len() as f32])).collect())
    }
}

pipeline! {
    Embeddings(args: std::path::PathBuf) {
        read(Memory::new(vec![String::from("a sentence")]))
            -> run_inference(Embedder)
            -> write(JsonLines::create(args));
    }
}

fn main() {}
