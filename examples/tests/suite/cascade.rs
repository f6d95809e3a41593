//! `examples/cascade.rs` end to end on the CPU: the staged MTCNN cascade finds the astronaut's
//! face (where the NumPy reference of `models/tests/suite/mtcnn_cascade.rs` puts it), nothing in the
//! cat, draws the face on a copy of the photo, and sends a corrupt image to the dead letters
//! alone.

#[allow(dead_code)]
#[path = "../../cascade.rs"]
mod example;

use crate::common;

use std::path::PathBuf;

use example::{Cascade, CascadeArgs};
use tandem_examples::vision::draw;
use tandem_models::fetch;

fn photo(asset: fetch::Asset) -> PathBuf {
    asset.path().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_cascade_finds_the_astronauts_face_draws_it_and_dead_letters_a_broken_image() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot an image").unwrap();
    let args = CascadeArgs {
        images: vec![photo(fetch::ASTRONAUT), photo(fetch::CHELSEA), broken],
        faces: dir.path().join("faces.jsonl"),
        annotated: dir.path().join("annotated"),
        min_face: 20.0,
    };
    let summary = common::run_on_cpu::<Cascade>(&args);
    assert_eq!(summary.dead_letters.len(), 1, "{summary}");
    let dead = &summary.dead_letters[0];
    assert_eq!(dead.position, 3);
    assert!(
        dead.error.contains("broken.png") && dead.error.contains("not a decodable image"),
        "{}",
        dead.error
    );
    assert_eq!(summary.inference.len(), 3, "one model stage per network");

    let text = std::fs::read_to_string(&args.faces).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let astronaut = &lines[0];
    assert_eq!(
        astronaut["image"],
        photo(fetch::ASTRONAUT).to_str().unwrap()
    );
    let faces = astronaut["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 1, "{astronaut}");
    let bbox: Vec<f64> = faces[0]["bbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // Where the NumPy reference puts it (models/tests/suite/mtcnn_cascade.rs).
    assert!(
        (160.0..200.0).contains(&bbox[0])
            && (40.0..80.0).contains(&bbox[1])
            && (250.0..290.0).contains(&bbox[2])
            && (150.0..190.0).contains(&bbox[3]),
        "{bbox:?}"
    );
    assert!(faces[0]["probability"].as_f64().unwrap() > 0.99);
    assert_eq!(faces[0]["landmarks"].as_array().unwrap().len(), 5);
    assert!(lines[1]["faces"].as_array().unwrap().is_empty(), "a cat");

    // The annotated copy: the photo's size, the box's top-left corner drawn in green.
    let drawn = image::open(args.annotated.join("astronaut.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(drawn.dimensions(), (512, 512));
    let (x, y) = (bbox[0].round() as u32, bbox[1].round() as u32);
    assert_eq!(*drawn.get_pixel(x, y), draw::BOX);
    assert!(args.annotated.join("chelsea.png").is_file());
    assert!(!args.annotated.join("broken.png").exists());
}
