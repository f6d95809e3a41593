//! Caption generation as transformers 5's `BlipForConditionalGeneration.generate` does it:
//! greedy search and beam search token for token (`GenerationMixin._sample` without sampling,
//! `_beam_search`), nucleus sampling with the same logits warpers (temperature, top-k, top-p)
//! but this crate's random numbers.
//!
//! The decoder runs on the model's device, one batched step per token for all the images (and
//! their beams or samples); the logits come back to the CPU, where the tokens are chosen.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::model::Blip;
use super::text::DecoderState;
use crate::Error;

/// transformers' `early_stopping` (`False`, `True` or `"never"`) for beam search.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EarlyStopping {
    /// `False` (transformers' default): stop once the best running beam, scored at its current
    /// length, cannot beat the worst of the `num_beams` finished ones.
    #[default]
    Heuristic,
    /// `True`: stop once `num_beams` hypotheses are finished.
    Finished,
    /// `"never"`: as [`EarlyStopping::Heuristic`], but a positive length penalty scores the
    /// running beam at the maximum length.
    Never,
}

/// How tokens are chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// The most likely token at each step (`num_beams=1, do_sample=False`).
    Greedy,
    /// Beam search (`num_beams>1, do_sample=False`).
    Beam {
        num_beams: usize,
        /// The finished hypotheses' summed log-probabilities are divided by their generated
        /// length (eos included) to this power (transformers' default 1.0).
        length_penalty: f32,
        early_stopping: EarlyStopping,
    },
    /// Sampling (`do_sample=True`): logits divided by `temperature`, cut to the `top_k` most
    /// likely tokens (transformers' default 50; 0 keeps all) and to the smallest set of mass
    /// `top_p`, then one token drawn. Each candidate of each image has its own random stream,
    /// seeded from `seed` and the candidate's number: an image gets the same captions alone or
    /// in any batch.
    Nucleus {
        top_p: f32,
        temperature: f32,
        top_k: usize,
        seed: u64,
    },
}

impl Method {
    /// Beam search with transformers' defaults (`length_penalty=1.0`, `early_stopping=False`).
    pub fn beam(num_beams: usize) -> Self {
        Self::Beam {
            num_beams,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
        }
    }

    /// Nucleus sampling with transformers' default `top_k` (50).
    pub fn nucleus(top_p: f32, temperature: f32, seed: u64) -> Self {
        Self::Nucleus {
            top_p,
            temperature,
            top_k: 50,
            seed,
        }
    }
}

/// What [`generate`] does.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    pub method: Method,
    /// Captions per image (`num_return_sequences`): 1 for greedy, at most `num_beams` for beam
    /// search, any number of samples.
    pub num_return_sequences: usize,
    /// At most this many tokens after the prompt (`max_new_tokens`), the final `[SEP]` included.
    pub max_new_tokens: usize,
}

impl Default for GenerateOptions {
    /// Greedy, one caption, 20 new tokens (transformers' default is `max_length=20`, prompt
    /// included: 16 new tokens after "a picture of").
    fn default() -> Self {
        Self {
            method: Method::Greedy,
            num_return_sequences: 1,
            max_new_tokens: 20,
        }
    }
}

/// One image's captions, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// Whole sequences as transformers returns them for this image alone: the prompt (`[DEC]`
    /// first), the new tokens, and `[SEP]` where the caption ended before `max_new_tokens`.
    pub sequences: Vec<Vec<u32>>,
    /// Beam search: transformers' `sequences_scores` (summed log-probabilities over the
    /// length-penalised generated length). Greedy and sampling: the summed log-probabilities of
    /// the new tokens under the model (before temperature and cuts).
    pub scores: Vec<f32>,
}

/// Generates captions for `image_embeds` (`[images, tokens, hidden]`, from
/// [`Blip::image_embeds`]) after `prompt` (from [`prompt_ids`](super::prompt_ids): `[DEC]` and
/// the prompt's tokens, no `[SEP]`).
pub fn generate(
    model: &Blip,
    image_embeds: Tensor<3>,
    prompt: &[u32],
    options: &GenerateOptions,
) -> Result<Vec<Generated>, Error> {
    let [images, _, _] = image_embeds.dims();
    check(model, prompt, options)?;
    if images == 0 {
        return Ok(Vec::new());
    }
    let device = image_embeds.device();
    let state = model.start(image_embeds);
    let ctx = Ctx {
        model,
        device,
        eos: model.config().text_config.sep_token_id,
        pad: model.config().text_config.pad_token_id,
        vocab: model.decoder().vocab_size(),
        max_length: prompt.len() + options.max_new_tokens,
        prompt,
    };
    match options.method {
        Method::Greedy => ctx.sample(state, images, 1, None),
        Method::Nucleus {
            top_p,
            temperature,
            top_k,
            seed,
        } => {
            let warp = Warp {
                top_p,
                temperature,
                top_k,
                seed,
            };
            ctx.sample(state, images, options.num_return_sequences, Some(warp))
        }
        Method::Beam {
            num_beams,
            length_penalty,
            early_stopping,
        } => {
            let beam = BeamOptions {
                num_beams,
                length_penalty,
                early_stopping,
                num_return_sequences: options.num_return_sequences,
            };
            super::beam::beam_search(&ctx, state, images, &beam)
        }
    }
}

/// Whether `options` and `prompt` can run on `model` (the handler checks at load, so that bad
/// options stop the run at start-up instead of dead-lettering every image).
pub(crate) fn check(model: &Blip, prompt: &[u32], options: &GenerateOptions) -> Result<(), Error> {
    let invalid = |reason: String| Err(Error::GenerationOptions { reason });
    let k = options.num_return_sequences;
    if k == 0 {
        return invalid("num_return_sequences is 0".into());
    }
    if options.max_new_tokens == 0 {
        return invalid("max_new_tokens is 0".into());
    }
    match options.method {
        Method::Greedy if k > 1 => {
            return invalid(format!(
                "greedy search returns one caption per image, not {k} (use beam search or sampling)"
            ))
        }
        Method::Beam { num_beams, .. } if num_beams < 2 || k > num_beams => {
            return invalid(format!(
                "beam search needs num_beams >= 2 and num_return_sequences <= num_beams (got {num_beams} beams, {k} sequences)"
            ))
        }
        Method::Nucleus {
            top_p, temperature, ..
        } if !(top_p > 0.0 && top_p <= 1.0 && temperature > 0.0 && temperature.is_finite()) => {
            return invalid(format!(
                "sampling needs 0 < top_p <= 1 and a positive temperature (got top_p {top_p}, temperature {temperature})"
            ))
        }
        _ => {}
    }
    let vocab = model.decoder().vocab_size();
    if prompt.is_empty() {
        return Err(Error::SequenceLength {
            tokens: 0,
            max: model.decoder().max_positions(),
        });
    }
    if let Some(&id) = prompt.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::TokenId { id, vocab });
    }
    // The last token is chosen, never fed: the positions go up to max_length - 2.
    let fed = prompt.len() + options.max_new_tokens - 1;
    if fed > model.decoder().max_positions() {
        return invalid(format!(
            "the prompt ({} tokens) and max_new_tokens ({}) need {fed} positions; the model has {}",
            prompt.len(),
            options.max_new_tokens,
            model.decoder().max_positions()
        ));
    }
    Ok(())
}

/// Beam search's settings.
pub(crate) struct BeamOptions {
    pub num_beams: usize,
    pub length_penalty: f32,
    pub early_stopping: EarlyStopping,
    pub num_return_sequences: usize,
}

/// Sampling's logits warpers and seed.
#[derive(Clone, Copy)]
struct Warp {
    top_p: f32,
    temperature: f32,
    top_k: usize,
    seed: u64,
}

/// What one generation run shares.
pub(crate) struct Ctx<'a> {
    pub model: &'a Blip,
    pub device: Device,
    pub eos: u32,
    pub pad: u32,
    pub vocab: usize,
    /// The prompt's length plus `max_new_tokens`.
    pub max_length: usize,
    pub prompt: &'a [u32],
}

impl Ctx<'_> {
    /// Runs `tokens` (one row of `width` ids per decoder row) and reads the logits back.
    pub fn step(
        &self,
        state: &mut DecoderState,
        tokens: &[u32],
        width: usize,
    ) -> Result<Vec<f32>, Error> {
        let rows = tokens.len() / width;
        let ids = tokens.iter().map(|&t| i64::from(t)).collect::<Vec<_>>();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [rows, width]), &self.device);
        self.model
            .decoder()
            .step(ids, state)
            .try_into_vec_as::<f32>()
            .map_err(Error::read_back("logits"))
    }

    /// The prompt for each of `rows` rows, flat.
    pub fn prompts(&self, rows: usize) -> Vec<u32> {
        (0..rows)
            .flat_map(|_| self.prompt.iter().copied())
            .collect()
    }

    /// `rows` as a tensor of row indices.
    pub fn rows(&self, rows: &[usize]) -> Tensor<1, Int> {
        let rows = rows.iter().map(|&r| r as i64).collect::<Vec<_>>();
        let n = rows.len();
        Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &self.device)
    }

    /// Greedy search (`warp` `None`) or sampling, `k` rows per image, as `_sample` does it:
    /// the prompt is run once, each step appends a token per row (the pad token to rows that
    /// ended), a row ends at eos or at `max_length`, the loop when every row has ended.
    fn sample(
        &self,
        mut state: DecoderState,
        images: usize,
        k: usize,
        warp: Option<Warp>,
    ) -> Result<Vec<Generated>, Error> {
        let rows = images * k;
        // The prompt runs once per image; its state is then copied to the image's k rows.
        let logits = self.step(&mut state, &self.prompts(images), self.prompt.len())?;
        let logits = if k > 1 {
            let expand: Vec<usize> = (0..rows).map(|r| r / k).collect();
            state.select_rows(self.rows(&expand));
            expand
                .iter()
                .flat_map(|&i| logits[i * self.vocab..(i + 1) * self.vocab].iter().copied())
                .collect()
        } else {
            logits
        };
        let mut rngs: Vec<SplitMix64> = (0..rows)
            .map(|r| SplitMix64::new(warp.map_or(0, |w| w.seed), (r % k) as u64))
            .collect();
        let mut sequences: Vec<Vec<u32>> = vec![self.prompt.to_vec(); rows];
        let mut scores = vec![0f32; rows];
        let mut unfinished = vec![true; rows];
        let mut logits = logits;
        let mut cur_len = self.prompt.len();
        loop {
            let mut next = Vec::with_capacity(rows);
            for r in 0..rows {
                if !unfinished[r] {
                    next.push(self.pad);
                    continue;
                }
                let row = &logits[r * self.vocab..(r + 1) * self.vocab];
                let token = match warp {
                    None => argmax(row),
                    Some(w) => w.draw(row, &mut rngs[r]),
                };
                scores[r] += log_softmax_at(row, token);
                next.push(token as u32);
            }
            cur_len += 1;
            for r in 0..rows {
                if unfinished[r] {
                    sequences[r].push(next[r]);
                    if next[r] == self.eos || cur_len >= self.max_length {
                        unfinished[r] = false;
                    }
                }
            }
            if !unfinished.iter().any(|&u| u) {
                break;
            }
            logits = self.step(&mut state, &next, 1)?;
        }
        Ok(sequences
            .chunks(k)
            .zip(scores.chunks(k))
            .map(|(s, c)| Generated {
                sequences: s.to_vec(),
                scores: c.to_vec(),
            })
            .collect())
    }
}

/// The first index of the largest value (`torch.argmax`).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// `log_softmax(row)` as torch computes it in f32: `x - max - log(sum(exp(x - max)))`.
pub(crate) fn log_softmax(row: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(row);
    row.iter().map(|&x| (x - lse.0) - lse.1).collect()
}

fn log_softmax_at(row: &[f32], i: usize) -> f32 {
    let lse = log_sum_exp(row);
    (row[i] - lse.0) - lse.1
}

/// `(max, log(sum(exp(x - max))))`.
fn log_sum_exp(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&x| f64::from(x - max).exp()).sum();
    (max, sum.ln() as f32)
}

impl Warp {
    /// transformers' warpers in their order (temperature, top-k, top-p), then a draw from the
    /// softmax of what is left.
    fn draw(&self, row: &[f32], rng: &mut SplitMix64) -> usize {
        let mut scores: Vec<f32> = if self.temperature != 1.0 {
            row.iter().map(|&x| x / self.temperature).collect()
        } else {
            row.to_vec()
        };
        let n = scores.len();
        if self.top_k > 0 && self.top_k < n {
            // TopKLogitsWarper: remove scores below the k-th largest.
            let mut sorted = scores.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let kth = sorted[self.top_k - 1];
            for s in &mut scores {
                if *s < kth {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        if self.top_p < 1.0 {
            // TopPLogitsWarper: ascending order, drop the tokens whose cumulative probability is
            // at most 1 - top_p (the most likely token always stays).
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
            let (max, lse) = log_sum_exp(&scores);
            let mut cumulative = 0f64;
            let threshold = 1.0 - f64::from(self.top_p);
            for (rank, &i) in order.iter().enumerate() {
                cumulative += f64::from(((scores[i] - max) - lse).exp());
                if cumulative <= threshold && rank + 1 < n {
                    scores[i] = f32::NEG_INFINITY;
                }
            }
        }
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f64> = scores.iter().map(|&s| f64::from(s - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        let target = rng.next_f64() * total;
        let mut cumulative = 0f64;
        let mut last = argmax(&scores);
        for (i, &w) in weights.iter().enumerate() {
            if w > 0.0 {
                cumulative += w;
                last = i;
                if cumulative > target {
                    return i;
                }
            }
        }
        last
    }
}

/// SplitMix64: a small, well-mixed random stream, one per sampled row.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64, stream: u64) -> Self {
        let mut s = Self(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        s.next_u64();
        s
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
