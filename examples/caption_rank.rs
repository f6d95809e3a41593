//! The seed's cascade, as Beam's multi-model page draws it: BLIP writes candidate captions for
//! each image, CLIP scores every candidate against the image, and the captions come out ranked.
//! Two `run_inference` stages, each with its own batches and thread: BLIP captions the next
//! images while CLIP ranks this one's candidates.
//!
//! ```text
//! cargo run --release --example caption_rank -- --blip BLIP_DIR --clip CLIP_DIR   # sample photos
//! cargo run --release --example caption_rank -- photos/ me.jpg --candidates 5 --method beam
//! cargo run --release --example caption_rank                  # the checkpoints from the hub
//! ```
//!
//! The weights are the Hugging Face checkpoints `Salesforce/blip-image-captioning-base` and
//! `openai/clip-vit-base-patch32`: folders holding `config.json` and `model.safetensors`, given
//! with `--blip` and `--clip`, or found in (and fetched into) the Hugging Face cache where the hub
//! is reachable (`cargo run --release --example fetch_models -- --hub`). Without them the run
//! stops at start-up with one paragraph saying so.
//!
//! Writes one JSON line per image to `captions.jsonl` (the candidates, best first, with CLIP's
//! probability over the image's candidates and its logit) and prints the best caption of each
//! image. An image that cannot be read or decoded goes to the dead letters alone.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use tandem::prelude::*;
use tandem_examples::vision::{AtEnd, Carry, ImageFiles};
use tandem_models::blip::{BlipCaptioner, Captions, Method};
use tandem_models::clip::{ClipQuery, ClipRanker, Ranked, ScoredCaption};

/// How BLIP writes its candidates.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Writing {
    /// Nucleus sampling (top-p), as Beam's notebook does: diverse candidates.
    Nucleus,
    /// Beam search: the `--candidates` most likely captions.
    Beam,
    /// Greedy: one caption (nothing to rank, but the fastest).
    Greedy,
}

#[derive(Debug, clap::Args)]
pub struct CaptionArgs {
    /// Image files and folders of them (PNG, JPEG); the sample photos when none is given.
    pub images: Vec<PathBuf>,
    /// The BLIP checkpoint folder (`Salesforce/blip-image-captioning-base`); else the Hugging
    /// Face cache, fetched from the hub where it is reachable.
    #[arg(long)]
    pub blip: Option<PathBuf>,
    /// The CLIP checkpoint folder (`openai/clip-vit-base-patch32`); else the Hugging Face cache.
    #[arg(long)]
    pub clip: Option<PathBuf>,
    /// Candidate captions per image.
    #[arg(long, default_value_t = 3)]
    pub candidates: usize,
    #[arg(long, value_enum, default_value = "nucleus")]
    pub method: Writing,
    /// Nucleus sampling's probability mass.
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    /// Nucleus sampling's seed: the same seed gives the same candidates.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The longest caption, in tokens after the prompt.
    #[arg(long, default_value_t = 20)]
    pub max_new_tokens: usize,
    /// Where the ranked captions go: one JSON object per image.
    #[arg(long, default_value = "captions.jsonl")]
    pub captions: PathBuf,
}

impl CaptionArgs {
    fn captioner(&self) -> BlipCaptioner {
        let blip = match &self.blip {
            Some(dir) => BlipCaptioner::new(dir),
            None => BlipCaptioner::pretrained(),
        };
        let method = match self.method {
            Writing::Nucleus => Method::nucleus(self.top_p, 1.0, self.seed),
            Writing::Beam => Method::beam(self.candidates.max(1)),
            Writing::Greedy => Method::Greedy,
        };
        let k = if matches!(self.method, Writing::Greedy) {
            1
        } else {
            self.candidates.max(1)
        };
        blip.method(method)
            .candidates(k)
            .max_new_tokens(self.max_new_tokens)
    }

    fn ranker(&self) -> ClipRanker {
        match &self.clip {
            Some(dir) => ClipRanker::new(dir),
            None => ClipRanker::pretrained(),
        }
    }
}

/// One line of `captions.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct RankedCaptions {
    pub image: PathBuf,
    /// Best first.
    pub captions: Vec<ScoredCaption>,
    pub blip: String,
    pub clip: String,
}

/// BLIP's candidates for an image, as CLIP's query (a caption written twice is ranked once),
/// tagged with BLIP's model id.
fn query(p: PredictionResult<PathBuf, Captions>) -> (String, ClipQuery) {
    let mut captions: Vec<String> = Vec::new();
    for caption in p.inference.captions {
        if !captions.contains(&caption) {
            captions.push(caption);
        }
    }
    let query = ClipQuery {
        image: p.example,
        captions,
    };
    (p.model_id.to_string(), query)
}

fn ranked(p: PredictionResult<(String, ClipQuery), Ranked>) -> RankedCaptions {
    let ((blip, query), inference) = (p.example, p.inference);
    RankedCaptions {
        image: query.image,
        captions: inference.captions,
        blip,
        clip: p.model_id.to_string(),
    }
}

fn print_best(all: Vec<RankedCaptions>) -> Result<(), String> {
    println!("best caption of {} image(s):", all.len());
    for r in &all {
        let name = r.image.file_name().unwrap_or_default().to_string_lossy();
        match r.captions.first() {
            Some(best) => println!(
                "  {name:<22} {:.3}  {}  (of {})",
                best.score,
                best.caption,
                r.captions.len()
            ),
            None => println!("  {name:<22} no caption"),
        }
    }
    Ok(())
}

pipeline! {
    /// Images -> BLIP (candidate captions) -> CLIP (scores) -> captions ranked per image.
    pub CaptionRank(args: CaptionArgs) {
        candidates = read(ImageFiles::new(&args.images))
            -> run_inference(args.captioner())
            -> map(|p: PredictionResult<PathBuf, Captions>| query(p));
        ranked = candidates
            -> run_inference(Carry::new(args.ranker()))
            -> map(|p: PredictionResult<(String, ClipQuery), Ranked>| ranked(p));
        ranked -> write(JsonLines::create(&args.captions));
        ranked -> write(AtEnd::new("the best captions", print_best));
    }
}

fn main() -> ExitCode {
    CaptionRank::main()
}
