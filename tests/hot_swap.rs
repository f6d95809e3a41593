//! Hot swap: a watched weights file that changes mid-run switches the model atomically, a broken
//! one leaves the running model in place, and nothing is lost. The model is `Scale`, a stand-in
//! (tests/common).

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use common::{run_tuned, wait_for, Scale};
use tandem::inference::HandlerExt;

/// Replaces `path` the way a deployment should: write beside it, then rename over it.
fn replace(path: &std::path::Path, text: &str) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

#[test]
fn hot_swap_switches_the_model_atomically_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("factor.txt");
    std::fs::write(&weights, "2").unwrap();
    let mut model = Scale::new(8);
    model.weights = Some(weights.clone());
    let loads = model.loads.clone();
    let path = weights.clone();
    // Mid-run: first a broken file (the running model must stay), then new weights.
    let input = (0..600).inspect(move |&i| {
        let (text, loaded) = match i {
            200 => ("not a number", 2),
            400 => ("5", 3),
            _ => return,
        };
        replace(&path, text);
        assert!(wait_for(Duration::from_secs(10), || loads.load(SeqCst) >= loaded));
        // Let the dispatcher take the new model before more input arrives.
        std::thread::sleep(Duration::from_millis(50));
    });
    let (args, summary) = run_tuned(
        input,
        model
            .watch(weights)
            .poll(Duration::from_millis(5))
            .max_wait(Duration::from_millis(1)),
    );
    let out = args.out.take();
    // Nothing lost, nothing duplicated, in order.
    assert_eq!(
        out.iter().map(|r| r.example).collect::<Vec<_>>(),
        (0..600).collect::<Vec<_>>()
    );
    // Every result was computed by the model its id names, and the id switches once.
    for r in &out {
        let factor: i64 = r.model_id.strip_prefix("scale@").unwrap().parse().unwrap();
        assert_eq!(r.inference, r.example * factor, "{r:?}");
    }
    let first_new = out
        .iter()
        .position(|r| &*r.model_id == "scale@5")
        .expect("the swap happened");
    assert!(out[..first_new].iter().all(|r| &*r.model_id == "scale@2"));
    assert!(out[first_new..].iter().all(|r| &*r.model_id == "scale@5"));
    assert!(
        (200..=400).contains(&(first_new as i64)),
        "swapped at {first_new}"
    );
    assert_eq!(out[599].model_id.as_ref(), "scale@5");
    let m = &summary.inference[0];
    assert_eq!((m.swaps, m.swap_failures), (1, 1));
    assert_eq!(m.model_id, "scale@5");
}
