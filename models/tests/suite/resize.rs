//! `tandem_models::resize` against Pillow's `Image.resize`, and CLIP's and BLIP's `prepare_rgb`
//! against transformers' `CLIPImageProcessorPil` / `BlipImageProcessorPil`, on scikit-image's
//! sample photos. The reference is `tests/reference/resize.json`, written by
//! `tests/reference/resize.py` (its header says how to regenerate it): a crc32 per case of the
//! uint8 (resize) or little-endian f32 (preprocessing) buffer, with a few values and sums.
//!
//! The bar: the resized bytes identical to Pillow's; the preprocessed floats identical too (the
//! crc32), and within 1e-6 of the recorded values, so a failure says by how much.

use std::collections::HashMap;

use image::RgbImage;
use serde_json::Value;
use tandem_models::fetch::{self, Asset};
use tandem_models::resize::{
    center_crop, resize, resize_rgb, shortest_edge_size, vertical_first, Filter,
};
use tandem_models::{blip, clip};

fn photo(name: &str) -> Asset {
    match name {
        "chelsea" => fetch::CHELSEA,
        "astronaut" => fetch::ASTRONAUT,
        "coffee" => fetch::COFFEE,
        "camera" => fetch::CAMERA,
        "motorcycle" => fetch::MOTORCYCLE,
        other => panic!("no photo {other}"),
    }
}

fn filter(name: &str) -> Filter {
    match name {
        "bicubic" => Filter::Bicubic,
        "bilinear" => Filter::Bilinear,
        "box" => Filter::Box,
        "hamming" => Filter::Hamming,
        "lanczos" => Filter::Lanczos,
        other => panic!("no filter {other}"),
    }
}

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/resize.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("cannot read {path} ({e}): generate it as the header of resize.py says")
    });
    serde_json::from_str(&text).expect("the reference is JSON")
}

/// The photos, decoded once each (the `image` crate, as `prepare_image` does).
struct Photos(HashMap<String, RgbImage>);

impl Photos {
    fn new() -> Self {
        Photos(HashMap::new())
    }

    fn get(&mut self, name: &str) -> &RgbImage {
        if !self.0.contains_key(name) {
            // The derived ones as `resize.py` makes them.
            let rgb = match name {
                // PIL's `transpose(ROTATE_90)` turns counter-clockwise.
                "chelsea_portrait" => image::imageops::rotate270(self.get("chelsea")),
                "coffee_strip" => {
                    image::imageops::crop_imm(self.get("coffee"), 250, 0, 100, 400).to_image()
                }
                _ => {
                    let path = photo(name).path().unwrap_or_else(|e| panic!("{e}"));
                    tandem_models::image_io::read_rgb(&path).unwrap_or_else(|e| panic!("{e}"))
                }
            };
            self.0.insert(name.to_owned(), rgb);
        }
        &self.0[name]
    }
}

fn crc32(bytes: &[u8]) -> u64 {
    u64::from(crc32fast::hash(bytes))
}

fn text(case: &Value, key: &str) -> String {
    case[key]
        .as_str()
        .unwrap_or_else(|| panic!("{case}: no {key}"))
        .to_owned()
}

fn number(case: &Value, key: &str) -> u64 {
    case[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{case}: no {key}"))
}

/// The recorded `[index, value]` pairs.
fn values(case: &Value) -> Vec<(usize, f64)> {
    case["values"]
        .as_array()
        .unwrap_or_else(|| panic!("{case}: no values"))
        .iter()
        .map(|pair| {
            let index = pair[0].as_u64().expect("an index") as usize;
            (index, pair[1].as_f64().expect("a value"))
        })
        .collect()
}

#[test]
fn decoding_gives_pillows_pixels() {
    // The inputs are the same, so a resize mismatch is the resize's.
    let reference = reference();
    let mut photos = Photos::new();
    for (name, crc) in reference["decoded_rgb_crc32"]
        .as_object()
        .expect("decoded_rgb_crc32")
    {
        let rgb = photos.get(name);
        assert_eq!(
            crc32(rgb.as_raw()),
            crc.as_u64().expect("a crc"),
            "{name}: the image crate decodes other pixels than Pillow"
        );
    }
}

#[test]
fn resize_is_pillows_byte_for_byte() {
    let reference = reference();
    let mut photos = Photos::new();
    let cases = reference["resize"].as_array().expect("resize cases");
    assert!(cases.len() >= 50, "{} resize cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = text(case, "photo");
        let (width, height) = (number(case, "width") as u32, number(case, "height") as u32);
        let filter_name = text(case, "filter");
        let out = resize_rgb(photos.get(&name), width, height, filter(&filter_name));
        let label = format!("{name} -> {width}x{height} {filter_name}");
        if crc32(out.as_raw()) != number(case, "crc32") {
            let picks: Vec<String> = values(case)
                .iter()
                .map(|&(i, v)| format!("[{i}] {} (Pillow {v})", out.as_raw()[i]))
                .collect();
            failures.push(format!("{label}: {}", picks.join(", ")));
        }
    }
    assert!(
        failures.is_empty(),
        "not Pillow's bytes:\n{}",
        failures.join("\n")
    );
}

#[test]
fn preprocessing_is_transformers_pil_processors() {
    let reference = reference();
    let mut photos = Photos::new();
    let cases = reference["preprocessing"]
        .as_array()
        .expect("preprocessing cases");
    assert_eq!(cases.len(), 28);
    for case in cases {
        let (model, name) = (text(case, "model"), text(case, "photo"));
        let size = number(case, "size") as usize;
        let rgb = photos.get(&name);
        let out = match model.as_str() {
            "clip" => clip::prepare_rgb(rgb, size),
            "blip" => blip::prepare_rgb(rgb, size),
            other => panic!("no model {other}"),
        };
        let label = format!("{model} {name} {size}");
        assert_eq!(out.len(), 3 * size * size, "{label}");
        for (i, want) in values(case) {
            let got = f64::from(out[i]);
            assert!((got - want).abs() <= 1e-6, "{label}: [{i}] {got} != {want}");
        }
        let sum: f64 = out.iter().map(|&v| f64::from(v)).sum();
        let want = case["sum"].as_f64().expect("sum");
        assert!(
            (sum - want).abs() <= 1e-6 * out.len() as f64,
            "{label}: sum {sum} != {want}"
        );
        let bytes: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            crc32(&bytes),
            number(case, "crc32"),
            "{label}: not the same f32s"
        );
    }
}

#[test]
fn clip_and_blip_sizes_follow_transformers() {
    // `int(size * long / short)`, truncated: 451x300 -> 336.77 -> 336.
    assert_eq!(shortest_edge_size(451, 300, 224), (336, 224));
    assert_eq!(shortest_edge_size(300, 451, 224), (224, 336));
    assert_eq!(shortest_edge_size(741, 500, 224), (331, 224));
    assert_eq!(shortest_edge_size(512, 512, 224), (224, 224));
    assert_eq!(shortest_edge_size(10, 3000, 32), (32, 9600));
    // Pillow 13's order of passes.
    assert!(vertical_first(512, 512, 1000, 333));
    assert!(vertical_first(451, 300, 345, 51));
    assert!(!vertical_first(451, 300, 316, 42));
    assert!(!vertical_first(451, 300, 224, 148));
    assert!(!vertical_first(300, 451, 224, 336));
    assert!(!vertical_first(300, 200, 300, 400));
    // Offsets floor((w - crop) / 2).
    let gradient = RgbImage::from_fn(7, 4, |x, y| image::Rgb([x as u8, y as u8, 0]));
    let crop = center_crop(&gradient, 4, 3);
    assert_eq!(crop.dimensions(), (4, 3));
    assert_eq!(crop.get_pixel(0, 0).0, [1, 0, 0]);
    assert_eq!(clip::prepare_rgb(&gradient, 4).len(), 3 * 16);
    assert_eq!(blip::prepare_rgb(&gradient, 5).len(), 3 * 25);
}

#[test]
fn resize_edge_cases() {
    let pixels: Vec<u8> = (0..5 * 3).map(|i| (i * 17) as u8).collect();
    // Same size: a copy, as Pillow.
    assert_eq!(resize(&pixels, 5, 3, 1, 5, 3, Filter::Bicubic), pixels);
    // A flat image stays flat under every filter, down and up, one channel or four.
    let flat = vec![200u8; 9 * 6 * 4];
    for f in [
        Filter::Box,
        Filter::Bilinear,
        Filter::Hamming,
        Filter::Bicubic,
        Filter::Lanczos,
    ] {
        for (w, h) in [(1, 1), (4, 3), (20, 2), (9, 17)] {
            let out = resize(&flat, 9, 6, 4, w, h, f);
            assert_eq!(out.len(), w * h * 4);
            assert!(out.iter().all(|&v| v == 200), "{f:?} {w}x{h}");
        }
    }
    // Bicubic overshoots on an edge: clipped to 0..=255.
    let edge: Vec<u8> = (0..8).map(|x| if x < 4 { 0 } else { 255 }).collect();
    let up = resize(&edge, 8, 1, 1, 32, 1, Filter::Bicubic);
    assert_eq!(up.first(), Some(&0));
    assert_eq!(up.last(), Some(&255));
}
