//! Keyed models: each model answers its own key's inputs and loads once; an input whose key has no
//! model is dead-lettered. The models are `Scale`, a stand-in (tests/common).

mod common;

use std::sync::atomic::Ordering::SeqCst;

use common::Scale;
use tandem::inference::PredictionResult;
use tandem::prelude::*;

struct KeyedArgs {
    input: Vec<i64>,
    even: Scale,
    odd: Scale,
    out: Collector<PredictionResult<(&'static str, i64), i64>>,
}

pipeline! {
    ByParity(args: KeyedArgs) {
        read(Memory::new(args.input.clone()))
            -> key_by(|x: &i64| match x { 5 => "five", x if x % 2 == 0 => "even", _ => "odd" })
            -> run_inference(tandem::inference::keyed([
                ("even", args.even.clone()),
                ("odd", args.odd.clone()),
            ]))
            -> write(args.out.clone());
    }
}

#[test]
fn keyed_models_answer_their_own_keys_and_load_once() {
    let mut even = Scale::new(4);
    even.factor = 10;
    let mut odd = Scale::new(4);
    odd.factor = 100;
    let args = KeyedArgs {
        input: (0..20).collect(),
        even,
        odd,
        out: Collector::new(),
    };
    let summary = ByParity::run_blocking(&args, &RunConfig::default()).unwrap();
    let out = args.out.take();
    assert_eq!(out.len(), 19);
    for r in &out {
        let (key, x) = r.example;
        let (factor, id) = if x % 2 == 0 {
            (10, "scale@10")
        } else {
            (100, "scale@100")
        };
        assert_eq!(key, if x % 2 == 0 { "even" } else { "odd" });
        assert_eq!((r.inference, &*r.model_id), (x * factor, id), "{x}");
    }
    // Each model loaded once and only ever saw its own key's inputs.
    assert_eq!(args.even.loads.load(SeqCst), 1);
    assert_eq!(args.odd.loads.load(SeqCst), 1);
    assert!(args
        .even
        .batches
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .all(|x| x % 2 == 0));
    assert!(args
        .odd
        .batches
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .all(|x| x % 2 == 1));
    assert_eq!(args.even.sizes().iter().sum::<usize>(), 10);
    assert_eq!(summary.dead_letters.len(), 1);
    assert_eq!(summary.dead_letters[0].position, 6);
    assert!(
        summary.dead_letters[0]
            .error
            .contains(r#"no model for the key "five" (models are keyed "even", "odd")"#),
        "{}",
        summary.dead_letters[0].error
    );
    assert_eq!(summary.inference[0].model_id, "scale@10, scale@100");
}
