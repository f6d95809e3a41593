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
