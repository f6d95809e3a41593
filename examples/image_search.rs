//! Vision proposes, language ranks: EfficientNet-Lite2 proposes its top ImageNet classes for each
//! image as caption candidates ("a photo of a {label}"), all-MiniLM-L6-v2 embeds the captions
//! and the query into one sentence space, and the images come out ranked by how close their
//! best caption is to the query (the BLIP -> CLIP cascade, with the models this project has: a
//! classifier stands in for the captioner, a sentence embedder for CLIP's text tower).
//!
//! ```text
//! cargo run --example image_search                                  # "something to drink"
//! cargo run --example image_search -- --query coffee
//! cargo run --example image_search -- --query "a pet" photos/ --labels 10
//! ```
//!
//! The query goes through the same MiniLM stage as the captions (it is merged into their
//! stream); the ranking is made once everything is embedded, printed, and written to
//! `ranking.jsonl` (one line per image, best first, with every caption's similarity). The
//! captions can only say what ImageNet's 1000 classes can: a query about something the
//! classifier has no class for finds nothing good, and the scores say so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;
use tandem::prelude::*;
use tandem_examples::vision::{AtEnd, Carry, ImageFiles};
use tandem_models::efficientnet::{Classification, EfficientNetLite};
use tandem_models::minilm::MiniLm;

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// What to look for, in words.
    #[arg(long, default_value = "something to drink")]
    pub query: String,
    /// Image files and folders of them (PNG, JPEG); the sample photos when none is given.
    pub images: Vec<PathBuf>,
    /// Caption candidates per image: the classifier's most likely classes.
    #[arg(long, default_value_t = 5)]
    pub labels: usize,
    /// Where the ranking goes: one JSON object per image, best first.
    #[arg(long, default_value = "ranking.jsonl")]
    pub ranking: PathBuf,
}

/// What a text going into MiniLM is: the query, or a caption proposed for an image.
#[derive(Clone, Debug)]
pub enum Text {
    Query,
    Caption {
        image: PathBuf,
        /// The classifier's probability for the caption's label.
        probability: f32,
    },
}

type Classified = PredictionResult<PathBuf, Classification>;
type Embedded = PredictionResult<(Text, String), Vec<f32>>;

/// The caption candidates of one image: "a photo of a {label}" for each of its top classes
/// (ImageNet names list synonyms, "tabby, tabby cat": the first is used).
fn captions(p: Classified) -> Vec<(Text, String)> {
    p.inference
        .top
        .into_iter()
        .map(|class| {
            let label = class.label.split(',').next().unwrap_or("").trim();
            let caption = format!("a photo of a {label}");
            let text = Text::Caption {
                image: p.example.clone(),
                probability: class.probability,
            };
            (text, caption)
        })
        .collect()
}

/// One caption and how close it is to the query.
#[derive(Clone, Debug, Serialize)]
pub struct ScoredCaption {
    pub caption: String,
    /// Cosine similarity to the query (the embeddings are unit vectors).
    pub similarity: f32,
    /// The classifier's probability for its label.
    pub label_probability: f32,
}

/// One image of the ranking: a line of `ranking.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct Ranked {
    pub rank: usize,
    pub image: PathBuf,
    /// Its best caption's similarity.
    pub score: f32,
    pub caption: String,
    /// Every caption, most similar first.
    pub captions: Vec<ScoredCaption>,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Ranks the images by their best caption's similarity to the query.
pub fn rank(embedded: Vec<Embedded>) -> Result<(String, Vec<Ranked>), String> {
    let mut query = None;
    let mut images: BTreeMap<PathBuf, Vec<(String, f32, Vec<f32>)>> = BTreeMap::new();
    for p in embedded {
        let ((text, words), embedding) = (p.example, p.inference);
        match text {
            Text::Query => query = Some((words, embedding)),
            Text::Caption {
                image, probability, ..
            } => images
                .entry(image)
                .or_default()
                .push((words, probability, embedding)),
        }
    }
    let (query, q) = query.ok_or("the query was not embedded (see the dead letters)")?;
    let mut ranking: Vec<Ranked> = images
        .into_iter()
        .map(|(image, captions)| {
            let mut captions: Vec<ScoredCaption> = captions
                .into_iter()
                .map(|(caption, label_probability, e)| ScoredCaption {
                    similarity: dot(&q, &e),
                    caption,
                    label_probability,
                })
                .collect();
            captions.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
            Ranked {
                rank: 0,
                image,
                score: captions[0].similarity,
                caption: captions[0].caption.clone(),
                captions,
            }
        })
        .collect();
    ranking.sort_by(|a, b| b.score.total_cmp(&a.score));
    for (i, r) in ranking.iter_mut().enumerate() {
        r.rank = i + 1;
    }
    Ok((query, ranking))
}

/// What the run ends with: rank, write the ranking to `path`, print it.
fn report_to(path: &Path) -> impl FnOnce(Vec<Embedded>) -> Result<(), String> + Send + 'static {
    let path = path.to_owned();
    move |embedded| report(embedded, &path)
}

fn report(embedded: Vec<Embedded>, path: &Path) -> Result<(), String> {
    if embedded.is_empty() {
        // A worker of a split run (`--workers`) that read nothing: the images and the query
        // are read whole by the first worker, which ranks them all.
        return Ok(());
    }
    let (query, ranking) = rank(embedded)?;
    let mut lines = String::new();
    for r in &ranking {
        lines.push_str(&serde_json::to_string(r).map_err(|e| e.to_string())?);
        lines.push('\n');
    }
    std::fs::write(path, lines).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    println!(
        "{:?}: {} images ranked by their best caption's cosine similarity (all-MiniLM-L6-v2)",
        query,
        ranking.len()
    );
    for r in &ranking {
        let name = r.image.file_name().unwrap_or_default().to_string_lossy();
        println!(
            "  {:>2}. {name:<22} {:>6.3}  {:?} (label p={:.2})",
            r.rank, r.score, r.caption, r.captions[0].label_probability
        );
    }
    println!("  (every caption's similarity in {})", path.display());
    Ok(())
}

pipeline! {
    /// Images ranked for a text query: EfficientNet-Lite2 proposes captions, MiniLM ranks them.
    pub ImageSearch(args: SearchArgs) {
        proposed = read(ImageFiles::new(&args.images))
            -> run_inference(EfficientNetLite::lite2().top_k(args.labels))
            -> flat_map(captions);
        query = read(Memory::new([(Text::Query, args.query.clone())]));
        merge(query, proposed)
            -> run_inference(Carry::<Text, MiniLm>::new(MiniLm::new()))
            -> write(AtEnd::new("the ranking", report_to(&args.ranking)));
    }
}

fn main() -> ExitCode {
    ImageSearch::main()
}
