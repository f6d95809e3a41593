//! `examples/image_search.rs` end to end on the CPU, on the sample photos: EfficientNet-Lite2's
//! labels as captions, MiniLM ranking them against a query.

#[allow(dead_code)]
#[path = "../../image_search.rs"]
mod example;

use crate::common;

use std::path::PathBuf;

use example::{ImageSearch, SearchArgs};
use tandem_models::fetch;

#[derive(serde::Deserialize)]
struct Line {
    rank: usize,
    image: PathBuf,
    score: f32,
    caption: String,
    captions: Vec<serde_json::Value>,
}

fn search(query: &str, dir: &std::path::Path) -> Vec<Line> {
    let args = SearchArgs {
        query: query.into(),
        images: Vec::new(),
        labels: 5,
        ranking: dir.join("ranking.jsonl"),
    };
    let summary = common::run_on_cpu::<ImageSearch>(&args);
    assert!(summary.dead_letters.is_empty(), "{summary}");
    let text = std::fs::read_to_string(&args.ranking).unwrap();
    let lines: Vec<Line> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), fetch::PHOTOS.len(), "{text}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line.rank, i + 1);
        assert_eq!(line.captions.len(), 5);
        assert!(
            line.caption.starts_with("a photo of a "),
            "{}",
            line.caption
        );
        assert!((-1.0..=1.0).contains(&line.score));
        if i > 0 {
            assert!(line.score <= lines[i - 1].score);
        }
    }
    lines
}

#[test]
fn coffee_ranks_the_coffee_photo_first() {
    let dir = tempfile::tempdir().unwrap();
    let lines = search("coffee", dir.path());
    let coffee = fetch::COFFEE.path().unwrap();
    assert_eq!(
        lines[0].image,
        coffee,
        "{:?}",
        lines
            .iter()
            .map(|l| (&l.image, l.score))
            .collect::<Vec<_>>()
    );
}

#[test]
fn something_to_drink_finds_the_coffee_photo_through_its_cup_caption() {
    // No caption says "drink": the coffee photo's "cup" is the closest of all captions.
    let dir = tempfile::tempdir().unwrap();
    let lines = search("something to drink", dir.path());
    assert_eq!(lines[0].image, fetch::COFFEE.path().unwrap());
    assert_eq!(lines[0].caption, "a photo of a cup");
}

/// On 3 workers of one process: the image folder and the query are read whole by the first
/// worker (they cannot be split), the others read nothing and write no ranking of their own
/// (they used to fail the run, finding no query): the same ranking as on one worker, and one
/// figure per model stage (the workers share each model).
#[test]
fn three_workers_rank_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let one = search("coffee", dir.path());
    let split = tempfile::tempdir().unwrap();
    let args = SearchArgs {
        query: "coffee".into(),
        images: Vec::new(),
        labels: 5,
        ranking: split.path().join("ranking.jsonl"),
    };
    let config = tandem::RunConfig {
        device: tandem::inference::DeviceChoice::Cpu,
        cluster: tandem::cluster::Cluster::threads(3),
        ..tandem::RunConfig::default()
    };
    let summary =
        tandem::job::run_pipeline::<ImageSearch>(&args, &config).unwrap_or_else(|e| panic!("{e}"));
    assert!(summary.totals().balanced(), "{summary}");
    let models: Vec<(u32, usize)> = summary
        .inference
        .iter()
        .map(|m| (m.stage, m.replicas))
        .collect();
    assert_eq!(models.len(), 2, "one figure per model stage: {models:?}");
    let text = std::fs::read_to_string(&args.ranking).unwrap();
    let images: Vec<PathBuf> = text
        .lines()
        .map(|l| serde_json::from_str::<Line>(l).unwrap().image)
        .collect();
    assert_eq!(
        images,
        one.iter().map(|l| l.image.clone()).collect::<Vec<_>>()
    );
}
