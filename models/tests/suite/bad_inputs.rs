//! Bad images and bad weights around a real model (EfficientNet-Lite0 on the CPU): a corrupt,
//! unsupported, empty or decompression-bomb image is dead-lettered alone with its reason while
//! the others are classified (grayscale and alpha are converted, not rejected); missing weights
//! or the weights of another model stop the run at start-up, before any input is read, with an
//! error that names the file and the fix.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tandem::inference::DeviceChoice;
use tandem::prelude::*;
use tandem_models::efficientnet::EfficientNetLite;
use tandem_models::fetch;

struct Args {
    paths: Vec<PathBuf>,
    weights: Option<PathBuf>,
    read: Arc<AtomicU64>,
    out: Collector<(PathBuf, String)>,
}

impl Args {
    fn new(paths: Vec<PathBuf>) -> Self {
        Self {
            paths,
            weights: None,
            read: Arc::new(AtomicU64::new(0)),
            out: Collector::new(),
        }
    }

    fn handler(&self) -> EfficientNetLite {
        match &self.weights {
            Some(path) => EfficientNetLite::lite0().weights(path),
            None => EfficientNetLite::lite0(),
        }
    }
}

pipeline! {
    Classify(args: Args) {
        read(Memory::new(args.paths.clone()))
            -> inspect(|_: &PathBuf| { args.read.fetch_add(1, Ordering::Relaxed); })
            -> run_inference(args.handler())
            -> map(|p| (p.example, p.inference.top[0].label.clone()))
            -> write(args.out.clone());
    }
}

fn config() -> RunConfig {
    RunConfig {
        device: DeviceChoice::Cpu,
        dead_letters: DeadLetterTarget::Memory,
        ..RunConfig::default()
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A PNG chunk: length, type, data, CRC of type and data.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out
}

/// A well-formed PNG header claiming `w` x `h` RGB pixels, with one empty data chunk: what a
/// decompression bomb looks like before its pixels are inflated.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// `coffee.png` re-encoded as 8-bit grayscale with alpha.
fn gray_alpha_coffee(dir: &Path) -> PathBuf {
    let coffee = image::open(fetch::COFFEE.path().unwrap()).unwrap();
    let path = dir.join("coffee-gray-alpha.png");
    image::DynamicImage::ImageLumaA8(coffee.to_luma_alpha8())
        .save(&path)
        .unwrap();
    path
}

#[test]
fn bad_images_are_dead_lettered_alone_and_the_rest_classified() {
    let dir = tempfile::tempdir().unwrap();
    let chelsea = fetch::CHELSEA.path().unwrap();
    let mut truncated = std::fs::read(&chelsea).unwrap();
    truncated.truncate(truncated.len() / 3);
    let paths = vec![
        chelsea.clone(),
        write(
            dir.path(),
            "garbage.png",
            b"\x89PNG\r\n\x1a\n this is not a png at all",
        ),
        write(dir.path(), "truncated.png", &truncated),
        write(
            dir.path(),
            "picture.gif",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
        ),
        write(dir.path(), "notes.txt", b"hello"),
        write(dir.path(), "empty.png", b""),
        write(dir.path(), "zero.png", &png_claiming(0, 10)),
        write(dir.path(), "bomb.png", &png_claiming(100_000, 100_000)),
        dir.path().join("missing.png"),
        gray_alpha_coffee(dir.path()),
    ];
    let args = Args::new(paths.clone());
    let summary = Classify::run_blocking(&args, &config()).unwrap();
    assert!(summary.totals().balanced(), "{summary}");

    let out = args.out.take();
    let labels: Vec<&str> = out.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(out.len(), 2, "{out:?}\n{summary}");
    assert_eq!(out[0].0, chelsea);
    assert!(labels[0].contains("cat"), "{labels:?}");
    // Grayscale with alpha is converted to RGB and still looks like coffee.
    assert!(
        labels[1].contains("espresso") || labels[1].contains("cup"),
        "{labels:?}"
    );

    let dead: Vec<(u64, &str)> = summary
        .dead_letters
        .iter()
        .map(|d| (d.position, d.error.as_str()))
        .collect();
    assert_eq!(
        dead.iter().map(|d| d.0).collect::<Vec<_>>(),
        (2..=9).collect::<Vec<u64>>(),
        "{dead:#?}"
    );
    let reason = |position: u64| dead.iter().find(|d| d.0 == position).unwrap().1;
    assert!(reason(2).contains("not a decodable image"), "{}", reason(2));
    assert!(reason(3).contains("not a decodable image"), "{}", reason(3));
    assert!(reason(4).contains("PNG or JPEG"), "{}", reason(4));
    assert!(reason(5).contains("PNG or JPEG"), "{}", reason(5));
    assert!(reason(6).contains("starting with nothing"), "{}", reason(6));
    assert!(
        reason(7).contains("no pixels") || reason(7).contains("not a decodable"),
        "{}",
        reason(7)
    );
    assert!(
        reason(8).contains("100000x100000") && reason(8).contains("decompression bomb"),
        "{}",
        reason(8)
    );
    assert!(reason(9).contains("missing.png"), "{}", reason(9));
}

#[test]
fn missing_weights_stop_the_run_before_any_input_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = Args::new(vec![fetch::CHELSEA.path().unwrap()]);
    let missing = dir.path().join("lite0-finetuned.pth");
    args.weights = Some(missing.clone());
    let error = Classify::run_blocking(&args, &config())
        .unwrap_err()
        .to_string();
    assert!(error.contains(&missing.display().to_string()), "{error}");
    assert!(error.contains("does not exist"), "{error}");
    assert!(error.contains("--example fetch_models"), "{error}");
    assert_eq!(args.read.load(Ordering::Relaxed), 0, "input was read");
    assert!(args.out.take().is_empty());
}

#[test]
fn the_weights_of_another_model_are_refused_at_start_up() {
    let mut args = Args::new(vec![fetch::CHELSEA.path().unwrap()]);
    let pnet = fetch::PNET.path().unwrap();
    args.weights = Some(pnet.clone());
    let error = Classify::run_blocking(&args, &config())
        .unwrap_err()
        .to_string();
    assert!(error.contains(&pnet.display().to_string()), "{error}");
    assert!(
        error.contains("are not efficientnet-lite0 weights"),
        "{error}"
    );
    assert!(error.len() < 1200, "one paragraph, not a dump: {error}");
    assert_eq!(args.read.load(Ordering::Relaxed), 0, "input was read");
}

/// A cached weights file that was damaged after it was fetched (a different size or hash): the
/// run stops at start-up naming the file and how to fetch it again. Runs the pipeline in a child
/// process (`TANDEM_HOME` is the process's), this test binary itself, filtered to the test below.
#[test]
fn a_damaged_cached_weights_file_is_refused_at_start_up() {
    let home = tempfile::tempdir().unwrap();
    let asset = tandem_models::efficientnet::Variant::Lite0.weights();
    let cached = asset.cached_in(home.path());
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    let mut bytes = std::fs::read(asset.path().unwrap()).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff; // same size, one flipped byte
    std::fs::write(&cached, &bytes).unwrap();
    // Labels are fetched too: give the child the real ones so only the weights are damaged.
    for label in [fetch::IMAGENET_SYNSETS, fetch::IMAGENET_LEMMAS] {
        let at = label.cached_in(home.path());
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::copy(label.path().unwrap(), at).unwrap();
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "bad_inputs::damaged_cache_child", "--nocapture"])
        .env("TANDEM_HOME", home.path())
        .env("TANDEM_DAMAGED_CACHE_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let error = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ERROR: "))
        .unwrap_or_else(|| panic!("the child printed no error:\n{stdout}"));
    assert!(error.contains(&cached.display().to_string()), "{error}");
    assert!(error.contains("damaged"), "{error}");
    assert!(error.contains("--example fetch_models"), "{error}");
    assert!(stdout.contains("READ 0"), "input was read:\n{stdout}");
}

/// The child half of the test above: only does something under `TANDEM_DAMAGED_CACHE_CHILD`.
#[test]
fn damaged_cache_child() {
    if std::env::var_os("TANDEM_DAMAGED_CACHE_CHILD").is_none() {
        return;
    }
    let args = Args::new(vec![PathBuf::from("unused.png")]);
    let error = Classify::run_blocking(&args, &config()).unwrap_err();
    println!("ERROR: {error}");
    println!("READ {}", args.read.load(Ordering::Relaxed));
}
