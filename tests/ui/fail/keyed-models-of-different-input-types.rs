// One keyed stage runs one kind of input: a text model and an image model cannot share it.
use tandem::inference::{keyed, DeviceRequest, Loaded, ModelHandler};
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
    fn prepare(&self, text: &String) -> Result<String, String> {
        Ok(text.clone())
    }
    fn infer(&self, _: &mut (), batch: Vec<String>) -> Result<Vec<f32>, String> {
        Ok(batch.iter().map(|s| s.len() as f32).collect())
    }
}

struct ImageModel;
impl ModelHandler for ImageModel {
    type Input = Vec<u8>;
    type Prepared = Vec<u8>;
    type Inference = f32;
    type Model = ();
    fn name(&self) -> String {
        "image".into()
    }
    fn load(&self, _: DeviceRequest) -> Result<Loaded<()>, String> {
        Ok(Loaded::new((), "cpu", "image@1"))
    }
    fn prepare(&self, image: &Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(image.clone())
    }
    fn infer(&self, _: &mut (), batch: Vec<Vec<u8>>) -> Result<Vec<f32>, String> {
        Ok(batch.iter().map(|b| b.len() as f32).collect())
    }
}

pipeline! {
    MixedKeys(args: Collector<f32>) {
        read(Memory::new(vec![("text", String::from("shoes"))]))
            -> run_inference(keyed([("text", TextModel), ("image", ImageModel)]))
            -> map(|p: PredictionResult<(&str, String), f32>| p.inference)
            -> write(args.clone());
    }
}

fn main() {}
