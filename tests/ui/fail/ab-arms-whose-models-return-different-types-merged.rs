// Champion and challenger answer with different types, so their results cannot be merged into
// one stream as they are.
use tandem::inference::{DeviceRequest, Loaded, ModelHandler, PredictionResult};
use tandem::prelude::*;

struct Champion;
impl ModelHandler for Champion {
    type Input = u64;
    type Prepared = u64;
    type Inference = f32;
    type Model = ();
    fn name(&self) -> String {
        "champion".into()
    }
    fn load(&self, _: DeviceRequest) -> Result<Loaded<()>, String> {
        Ok(Loaded::new((), "cpu", "champion@1"))
    }
    fn prepare(&self, user: &u64) -> Result<u64, String> {
        Ok(*user)
    }
    fn infer(&self, _: &mut (), batch: Vec<u64>) -> Result<Vec<f32>, String> {
        Ok(batch.iter().map(|&u| u as f32).collect())
    }
}

struct Challenger;
impl ModelHandler for Challenger {
    type Input = u64;
    type Prepared = u64;
    type Inference = Vec<f32>;
    type Model = ();
    fn name(&self) -> String {
        "challenger".into()
    }
    fn load(&self, _: DeviceRequest) -> Result<Loaded<()>, String> {
        Ok(Loaded::new((), "cpu", "challenger@1"))
    }
    fn prepare(&self, user: &u64) -> Result<u64, String> {
        Ok(*user)
    }
    fn infer(&self, _: &mut (), batch: Vec<u64>) -> Result<Vec<Vec<f32>>, String> {
        Ok(batch.iter().map(|&u| vec![u as f32]).collect())
    }
}

pipeline! {
    MergedArms(args: Collector<PredictionResult<u64, f32>>) {
        [a, b] = read(Memory::new(vec![1u64, 2, 3])) -> partition(split_by(|u: &u64| *u, [50, 50]));
        champion = a -> run_inference(Champion);
        challenger = b -> run_inference(Challenger);
        merge(champion, challenger) -> write(args.clone());
    }
}

fn main() {}
