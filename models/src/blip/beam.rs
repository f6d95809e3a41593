//! Beam search, step for step as transformers 5's `GenerationMixin._beam_search` (with its
//! helpers `_get_top_k_continuations`, `_get_running_beams_for_next_iteration`,
//! `_update_finished_beams`, `_check_early_stop_heuristic`,
//! `_beam_search_has_unfinished_sequences`), for one eos token and no logits processor:
//!
//! - each image keeps `num_beams` running beams (scores: summed log-probabilities; at the start
//!   the first beam 0 and the others -1e9) and `num_beams` finished slots (-1e9, unfinished);
//! - a step takes the top `2 * num_beams` continuations over all beams and tokens; those that
//!   hit eos or the maximum length are "finished" (their running score gets -1e9), the best
//!   `num_beams` others run on;
//! - a finished continuation among the top `num_beams` competes for the finished slots with its
//!   score divided by `generated length ** length_penalty` (the generated length counts the new
//!   tokens, eos included), unless the image is done (early stopping);
//! - the loop ends when no image can improve (the heuristic of `early_stopping`), when every
//!   image has all its slots finished with `early_stopping=True`, or at the maximum length.
//!
//! Scores are f32 as in torch, -1e9 penalties included (so their rounding is the same).

use super::generate::{log_softmax, BeamOptions, Ctx, EarlyStopping, Generated};
use super::text::DecoderState;
use crate::Error;

/// What transformers adds to rule a score out.
const OUT: f32 = -1.0e9;

/// One image's beams.
struct Image {
    /// Running beams: sequences (prompt included) and scores, best first.
    running: Vec<Vec<u32>>,
    running_scores: Vec<f32>,
    /// Finished slots, best first.
    finished: Vec<Vec<u32>>,
    finished_scores: Vec<f32>,
    is_finished: Vec<bool>,
    /// `is_early_stop_heuristic_unsatisfied`.
    improvable: bool,
}

/// A continuation: its accumulated score, the beam it extends and the token.
#[derive(Clone, Copy)]
struct Candidate {
    score: f32,
    beam: usize,
    token: u32,
}

/// The `k` largest of `scores` (index order among equals), as `torch.topk` sorts them.
fn top_k(scores: impl Iterator<Item = f32>, k: usize) -> Vec<(usize, f32)> {
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    for (i, s) in scores.enumerate() {
        if best.len() == k && s <= best[k - 1].1 {
            continue;
        }
        let at = best.partition_point(|&(_, b)| b >= s);
        best.insert(at, (i, s));
        best.truncate(k);
    }
    best
}

/// `x / (len ** length_penalty)` as torch computes it (the Python float divisor cast to f32).
fn penalise(score: f32, len: usize, length_penalty: f32) -> f32 {
    score / ((len as f64).powf(f64::from(length_penalty)) as f32)
}

pub(crate) fn beam_search(
    ctx: &Ctx<'_>,
    mut state: DecoderState,
    images: usize,
    options: &BeamOptions,
) -> Result<Vec<Generated>, Error> {
    let nb = options.num_beams;
    let keep = 2 * nb;
    let vocab = ctx.vocab;
    let prompt_len = ctx.prompt.len();

    // The prompt runs once per image; the state is copied to the image's beams (all equal).
    let logits = ctx.step(&mut state, &ctx.prompts(images), prompt_len)?;
    let expand: Vec<usize> = (0..images * nb).map(|r| r / nb).collect();
    state.select_rows(ctx.rows(&expand));
    let mut logits: Vec<Vec<f32>> = expand
        .iter()
        .map(|&i| logits[i * vocab..(i + 1) * vocab].to_vec())
        .collect();

    let mut beams: Vec<Image> = (0..images)
        .map(|_| Image {
            running: vec![ctx.prompt.to_vec(); nb],
            running_scores: (0..nb).map(|j| if j == 0 { 0.0 } else { OUT }).collect(),
            finished: vec![ctx.prompt.to_vec(); nb],
            finished_scores: vec![OUT; nb],
            is_finished: vec![false; nb],
            improvable: true,
        })
        .collect();

    let mut cur_len = prompt_len;
    loop {
        let mut all_hit = true;
        let mut sources = Vec::with_capacity(images * nb);
        for (b, image) in beams.iter_mut().enumerate() {
            // b. log-probabilities plus the running scores, over num_beams * vocab.
            let log_probs: Vec<Vec<f32>> = (0..nb)
                .map(|j| {
                    let base = image.running_scores[j];
                    log_softmax(&logits[b * nb + j])
                        .into_iter()
                        .map(|l| l + base)
                        .collect()
                })
                .collect();
            // c. the top 2 * num_beams continuations.
            let flat = log_probs.iter().flat_map(|row| row.iter().copied());
            let candidates: Vec<Candidate> = top_k(flat, keep)
                .into_iter()
                .map(|(i, score)| Candidate {
                    score,
                    beam: i / vocab,
                    token: (i % vocab) as u32,
                })
                .collect();
            // d. which of them hit a stopping criterion (eos, max length).
            let hits: Vec<bool> = candidates
                .iter()
                .map(|c| c.token == ctx.eos || cur_len + 1 >= ctx.max_length)
                .collect();
            all_hit &= hits.iter().all(|&h| h);
            let extend = |c: &Candidate, image: &Image| {
                let mut seq = image.running[c.beam].clone();
                seq.push(c.token);
                seq
            };

            // e. the best num_beams that did not finish run on.
            let running_log_probs: Vec<f32> = candidates
                .iter()
                .zip(&hits)
                .map(|(c, &h)| c.score + if h { OUT } else { 0.0 })
                .collect();
            let next = top_k(running_log_probs.iter().copied(), nb);
            let next_running: Vec<Vec<u32>> = next
                .iter()
                .map(|&(i, _)| extend(&candidates[i], image))
                .collect();
            let next_scores: Vec<f32> = next.iter().map(|&(_, s)| s).collect();
            sources.extend(next.iter().map(|&(i, _)| b * nb + candidates[i].beam));

            // f. finished candidates among the top num_beams compete for the finished slots.
            let full = image.is_finished.iter().all(|&f| f)
                && options.early_stopping == EarlyStopping::Finished;
            let generated = cur_len + 1 - prompt_len;
            let mut merged_scores = image.finished_scores.clone();
            let mut merged_finished = image.is_finished.clone();
            for (i, c) in candidates.iter().enumerate() {
                let just_finished = hits[i] && i < nb;
                let mut s = penalise(c.score, generated, options.length_penalty);
                s += if full { OUT } else { -0.0 };
                s += if image.improvable { -0.0 } else { OUT };
                s += if just_finished { -0.0 } else { OUT };
                merged_scores.push(s);
                merged_finished.push(just_finished);
            }
            let kept = top_k(merged_scores.iter().copied(), nb);
            let sequence = |m: usize| {
                if m < nb {
                    image.finished[m].clone()
                } else {
                    extend(&candidates[m - nb], image)
                }
            };
            let finished: Vec<Vec<u32>> = kept.iter().map(|&(m, _)| sequence(m)).collect();
            image.finished_scores = kept.iter().map(|&(_, s)| s).collect();
            image.is_finished = kept.iter().map(|&(m, _)| merged_finished[m]).collect();
            image.finished = finished;
            image.running = next_running;
            image.running_scores = next_scores;
        }

        // g. the heuristic at the new length, and the loop's end.
        cur_len += 1;
        for image in &mut beams {
            let best_len =
                if options.early_stopping == EarlyStopping::Never && options.length_penalty > 0.0 {
                    ctx.max_length - prompt_len
                } else {
                    cur_len - prompt_len
                };
            let best = penalise(image.running_scores[0], best_len, options.length_penalty);
            let worst = image
                .finished_scores
                .iter()
                .copied()
                .fold(f32::INFINITY, f32::min);
            let beatable = image
                .is_finished
                .iter()
                .any(|&f| best > if f { worst } else { OUT });
            image.improvable &= beatable;
        }
        let improvement_possible = beams.iter().any(|i| i.improvable);
        let all_full = options.early_stopping == EarlyStopping::Finished
            && beams.iter().all(|i| i.is_finished.iter().all(|&f| f));
        if !improvement_possible || all_full || all_hit {
            break;
        }

        state.select_self_rows(ctx.rows(&sources));
        let tokens: Vec<u32> = beams
            .iter()
            .flat_map(|i| i.running.iter().map(|s| s[s.len() - 1]))
            .collect();
        let flat = ctx.step(&mut state, &tokens, 1)?;
        logits = flat.chunks(vocab).map(<[f32]>::to_vec).collect();
    }

    let k = options.num_return_sequences;
    Ok(beams
        .into_iter()
        .map(|image| Generated {
            sequences: image.finished.into_iter().take(k).collect(),
            scores: image.finished_scores.into_iter().take(k).collect(),
        })
        .collect())
}
