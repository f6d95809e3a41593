//! `read(ImageFiles::new(&paths))`: image files named on the command line, the PNG and JPEG
//! files of folders, or the sample photos when nothing is named.

use std::path::{Path, PathBuf};

use tandem::io::{Record, Source};

/// The scikit-image sample photos (astronaut, chelsea, coffee, camera, motorcycle_left,
/// rocket), fetched through pip into `~/.cache/tandem` on first use.
pub fn sample_photos() -> Result<Vec<PathBuf>, String> {
    tandem_models::fetch::PHOTOS
        .iter()
        .map(|asset| asset.path().map_err(|e| e.to_string()))
        .collect()
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// The files among `paths`, and the PNG and JPEG files in the folders among them (sorted by
/// name, not recursive); the sample photos when `paths` is empty.
pub fn list_images(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    if paths.is_empty() {
        return sample_photos();
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| format!("cannot list the folder `{}`: {e}", path.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "the folder `{}` holds no PNG or JPEG file",
                    path.display()
                ));
            }
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(format!("`{}`: no such file or folder", path.display()));
        }
    }
    Ok(files)
}

/// A source of image paths: see [`list_images`]. The list is made when the run opens its
/// sources, so a missing folder (or a sample photo that cannot be fetched) fails the run before
/// anything is read; the files themselves are read by the stages that decode them, where an
/// unreadable one goes to the dead letters alone. `--input PATH` replaces the list by `PATH`.
pub struct ImageFiles {
    paths: Vec<PathBuf>,
    cycle: Option<usize>,
    files: Vec<PathBuf>,
    next: usize,
}

impl ImageFiles {
    pub fn new(paths: &[PathBuf]) -> Self {
        Self {
            paths: paths.to_vec(),
            cycle: None,
            files: Vec::new(),
            next: 0,
        }
    }

    /// `count` paths, going round the list as often as needed (a stream of requests about a few
    /// images).
    pub fn cycle(mut self, count: usize) -> Self {
        self.cycle = Some(count);
        self
    }

    fn len(&self) -> usize {
        self.cycle.unwrap_or(self.files.len())
    }
}

impl Source for ImageFiles {
    type Item = PathBuf;

    fn describe(&self) -> String {
        if self.paths.is_empty() {
            "the sample photos".into()
        } else {
            let names: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
            format!("images in {}", names.join(", "))
        }
    }

    fn set_path(&mut self, path: &Path) -> bool {
        self.paths = vec![path.to_owned()];
        true
    }

    fn open(&mut self) -> tandem::Result<()> {
        self.files = list_images(&self.paths).map_err(tandem::Error::Config)?;
        self.next = 0;
        Ok(())
    }

    fn read_chunk<E: FnMut(Record<PathBuf>)>(
        &mut self,
        max: usize,
        mut emit: E,
    ) -> tandem::Result<bool> {
        for _ in 0..max {
            if self.next >= self.len() {
                return Ok(false);
            }
            let path = self.files[self.next % self.files.len()].clone();
            self.next += 1;
            emit(Record::Good(self.next as u64, path));
        }
        Ok(self.next < self.len())
    }
}
