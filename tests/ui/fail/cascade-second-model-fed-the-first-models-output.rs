// A cascade: a captioner writes a caption for each image, a ranker scores text. The ranker is
// wired straight after the captioner, so it receives the captioner's results, not text.
use tandem::inference::{DeviceRequest, Loaded, ModelHandler};
use tandem::prelude::*;

pub struct Image(Vec<u8>);
pub struct Caption(String);

struct Captioner;
impl ModelHandler for Captioner {
    type Input = Image;
    type Prepared = Vec<u8>;
    type Inference = Caption;
    type Model = ();
    fn name(&self) -> String {
        "captioner".into()
    }
    fn load(&self, _: DeviceRequest) -> Result<Loaded<()>, String> {
        Ok(Loaded::new((), "cpu", "captioner@1"))
    }
    fn prepare(&self, image: &Image) -> Result<Vec<u8>, String> {
        Ok(image.0.clone())
    }
    fn infer(&self, _: &mut (), batch: Vec<Vec<u8>>) -> Result<Vec<Caption>, String> {
        Ok(batch.iter().map(|b| Caption(format!("{} bytes", b.len()))).collect())
    }
}

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
    Cascade(args: Collector<f32>) {
        read(Memory::new(vec![Image(vec![1, 2, 3])]))
            -> run_inference(Captioner)
            -> run_inference(Ranker)
            -> map(|scored: PredictionResult<String, f32>| scored.inference)
            -> write(args.clone());
    }
}

fn main() {}
