use tandem::inference::{DeviceRequest, Loaded, ModelHandler};
use tandem::prelude::*;

struct TextModel;

impl ModelHandler for TextModel {
    type Input = String;
    type Prepared = String;
    type Inference = f32;
    type Model = ();

    fn name(&self) -> String {
        "text".into()
    }
    fn load(&self, _: DeviceRequest) -> Result<Loaded<()>, String> {
        Ok(Loaded::new((), "cpu", "text@1"))
    }
    fn prepare(&self, input: &String) -> Result<String, String> {
        Ok(input.clone())
    }
    fn infer(&self, _: &mut (), batch: Vec<String>) -> Result<Vec<f32>, String> {
        Ok(batch.iter().map(|s| s.len() as f32).collect())
    }
}

pipeline! {
    NumbersIntoTextModel(args: Collector<u32>) {
        read(Memory::new(vec![1u32, 2])) -> run_inference(TextModel) -> drop();
    }
}

fn main() {}
