//! A face-detection cascade: P-Net proposes face boxes over an image pyramid, R-Net keeps and
//! corrects the likely ones, O-Net does the same and places five landmarks. Each network is a
//! `run_inference` stage of its own (its own thread and batches: P-Net searches the next image
//! while R-Net and O-Net look at this one's candidates), and the box arithmetic between them
//! (non-maximum suppression, regression, squaring) is a typed `map` you can read in the graph.
//! The networks are MTCNN's (facenet-pytorch 2.6.0's weights, fetched through pip).
//!
//! ```text
//! cargo run --example cascade                        # the sample photos
//! cargo run --example cascade -- photos/ me.jpg      # folders (PNG, JPEG) and files
//! cargo run --example cascade -- --graph mermaid
//! ```
//!
//! Writes one JSON line per image to `faces.jsonl` (boxes, probabilities, landmarks, in pixels)
//! and a copy of each image with the boxes (green) and landmarks (red) drawn to `faces/`, and
//! prints a table of what it found. An image that cannot be read or decoded goes to the dead
//! letters alone.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;
use tandem::prelude::*;
use tandem_examples::vision::{draw, AtEnd, ImageFiles};
use tandem_models::mtcnn::{
    faces, proposals, refine, Candidate, Detected, Face, Frame, Marked, MtcnnConfig, ONetStage,
    PNetStage, Proposals, PyramidCells, RNetStage,
};

#[derive(Debug, clap::Args)]
pub struct CascadeArgs {
    /// Image files and folders of them (PNG, JPEG); the sample photos when none is given.
    pub images: Vec<PathBuf>,
    /// Where the faces go: one JSON object per image.
    #[arg(long, default_value = "faces.jsonl")]
    pub faces: PathBuf,
    /// A folder for copies of the images with the faces drawn (PNG).
    #[arg(long, default_value = "faces")]
    pub annotated: PathBuf,
    /// The smallest face searched for, in pixels (smaller is slower: a taller pyramid).
    #[arg(long, default_value_t = 20.0)]
    pub min_face: f64,
}

impl CascadeArgs {
    pub fn settings(&self) -> MtcnnConfig {
        MtcnnConfig::new().with_min_face_size(self.min_face)
    }
}

/// What the cascade found in one image: a line of `faces.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct FoundFaces {
    pub image: PathBuf,
    pub width: u32,
    pub height: u32,
    /// By decreasing probability.
    pub faces: Vec<Face>,
    /// The copy with the faces drawn.
    pub annotated: PathBuf,
}

type AfterPNet = PredictionResult<Frame, PyramidCells>;
type AfterRNet = PredictionResult<Proposals, Vec<Candidate>>;
type AfterONet = PredictionResult<Proposals, Vec<Marked>>;

/// Draws the faces on a copy of the image and saves it in `folder` under the image's name (as
/// PNG).
fn annotate(detected: Detected, folder: &Path) -> Result<FoundFaces, String> {
    let Detected { frame, faces } = detected;
    let stem = frame
        .path
        .file_stem()
        .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
    std::fs::create_dir_all(folder)
        .map_err(|e| format!("cannot create the folder `{}`: {e}", folder.display()))?;
    let annotated = folder.join(format!("{stem}.png"));
    draw::faces(&frame.image, &faces)
        .save(&annotated)
        .map_err(|e| format!("cannot write `{}`: {e}", annotated.display()))?;
    Ok(FoundFaces {
        image: frame.path,
        width: frame.image.width(),
        height: frame.image.height(),
        faces,
        annotated,
    })
}

/// The table printed at the end.
fn print_table(found: Vec<FoundFaces>) -> Result<(), String> {
    let faces: usize = found.iter().map(|f| f.faces.len()).sum();
    println!(
        "{faces} face{} in {} image{}:",
        if faces == 1 { "" } else { "s" },
        found.len(),
        if found.len() == 1 { "" } else { "s" }
    );
    for f in &found {
        let name = f.image.file_name().unwrap_or_default().to_string_lossy();
        let what: Vec<String> = f
            .faces
            .iter()
            .map(|face| {
                let [x1, y1, x2, y2] = face.bbox.map(|v| v.round() as i64);
                format!("p={:.3} [{x1}, {y1}, {x2}, {y2}]", face.probability)
            })
            .collect();
        println!(
            "  {name:<22} {:>4}x{:<4} {} -> {}",
            f.width,
            f.height,
            if what.is_empty() {
                "no face".to_owned()
            } else {
                what.join(", ")
            },
            f.annotated.display()
        );
    }
    Ok(())
}

pipeline! {
    /// Faces in images: P-Net -> R-Net -> O-Net, the box arithmetic between them as typed stages.
    pub Cascade(args: CascadeArgs) {
        frames = read(ImageFiles::new(&args.images))
            -> try_map(|path: PathBuf| Frame::open(&path));
        candidates = frames
            -> run_inference(PNetStage::new(args.settings()))
            -> map(|p: AfterPNet| proposals(p));
        refined = candidates
            -> run_inference(RNetStage::new())
            -> map(|p: AfterRNet| refine(p, &args.settings()));
        found = refined
            -> run_inference(ONetStage::new())
            -> map(|p: AfterONet| faces(p, &args.settings()))
            -> try_map(|d: Detected| annotate(d, &args.annotated));
        found -> write(JsonLines::create(&args.faces));
        found -> write(AtEnd::new("the table of faces", print_table));
    }
}

fn main() -> ExitCode {
    Cascade::main()
}
