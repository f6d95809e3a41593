//! BLIP captioning against transformers on a small random `BlipForConditionalGeneration`
//! (`tests/fixtures/blip-tiny`: `config.json`, `model.safetensors`), whose outputs are in
//! `tests/reference/blip.json`: the image embeddings and the first step's logits (within 1e-4 of
//! the largest value on flex, 1e-3 on wgpu), greedy and beam search token ids (identical), their
//! decoded texts (identical), the prompt and tokenizer ids. transformers pads a batch's shorter
//! sequences (greedy with the pad id, beam search with the eos id): a reference sequence is
//! compared up to its first `[SEP]` after the prompt.

use crate::parity::relative_error;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde_json::Value;
use tandem::inference::{DeviceChoice, PredictionResult, Tuned};
use tandem::prelude::*;
use tandem_models::blip::{
    decode, generate, load_tokenizer, prompt_ids, Blip, BlipCaptioner, Captions, EarlyStopping,
    GenerateOptions, Generated, Method,
};
use tandem_models::fetch;

fn fixture() -> PathBuf {
    crate::captioning::checkpoint("blip")
}

fn reference() -> &'static Value {
    static REFERENCE: OnceLock<Value> = OnceLock::new();
    REFERENCE.get_or_init(|| crate::captioning::reference("blip"))
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn list<T>(v: &Value, f: impl Fn(&Value) -> T) -> Vec<T> {
    v.as_array().unwrap().iter().map(f).collect()
}

fn tokenizer() -> &'static tokenizers::Tokenizer {
    static TOKENIZER: OnceLock<tokenizers::Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| load_tokenizer(&fetch::MINILM_TOKENIZER.path().unwrap()).unwrap())
}

fn flex() -> &'static Blip {
    static FLEX: OnceLock<Blip> = OnceLock::new();
    FLEX.get_or_init(|| Blip::load(&fixture(), &Device::flex()).unwrap())
}

/// The reference's pixel values as a batch.
fn pixels(model: &Blip, device: &Device) -> Tensor<4> {
    let images = list(&reference()["pixel_values"], floats);
    let n = images.len();
    let size = model.image_size();
    let flat: Vec<f32> = images.concat();
    Tensor::<4>::from_data(TensorData::new(flat, [n, 3, size, size]), device)
}

fn prompt() -> Vec<u32> {
    ids(&reference()["prompt_ids"])
}

/// A reference sequence as generated for its image alone: cut after the first `[SEP]` past the
/// prompt (what follows is the batch's padding).
fn unpadded(sequence: Vec<u32>, prompt_len: usize) -> Vec<u32> {
    let eos = flex().config().text_config.sep_token_id;
    match sequence[prompt_len..].iter().position(|&t| t == eos) {
        Some(i) => sequence[..prompt_len + i + 1].to_vec(),
        None => sequence,
    }
}

fn check_embeds(model: &Blip, device: &Device, tolerance: f64) -> Tensor<3> {
    let embeds = model.image_embeds(pixels(model, device));
    let want = list(&reference()["image_embeds"], floats);
    let [n, tokens, hidden] = embeds.dims();
    assert_eq!(n, want.len());
    let got = embeds.clone().try_into_vec_as::<f32>().unwrap();
    // The full-size reference keeps the class token's row only.
    let kept = if reference()["image_embeds_tokens"] == "class token" {
        1
    } else {
        tokens
    };
    for (i, want) in want.iter().enumerate() {
        let got = &got[i * tokens * hidden..i * tokens * hidden + kept * hidden];
        let error = relative_error(got, want);
        eprintln!("image {i}: embeddings relative error {error:.2e}");
        assert!(error < tolerance, "image {i}: {error}");
    }
    embeds
}

fn check_first_step(model: &Blip, embeds: Tensor<3>, tolerance: f64) {
    let [n, _, _] = embeds.dims();
    let device = embeds.device();
    let prompt = prompt();
    let mut state = model.start(embeds);
    let flat: Vec<i64> = (0..n)
        .flat_map(|_| prompt.iter().map(|&t| i64::from(t)))
        .collect();
    let input = Tensor::<2, Int>::from_data(TensorData::new(flat, [n, prompt.len()]), &device);
    let logits = model
        .decoder()
        .step(input, &mut state)
        .try_into_vec_as::<f32>()
        .unwrap();
    let vocab = model.decoder().vocab_size();
    let at = ids(&reference()["logits_ids"]);
    for (i, want) in list(&reference()["first_step_logits"], floats)
        .iter()
        .enumerate()
    {
        let got: Vec<f32> = at.iter().map(|&t| logits[i * vocab + t as usize]).collect();
        let error = relative_error(&got, want);
        eprintln!("image {i}: first-step logits relative error {error:.2e}");
        assert!(error < tolerance, "image {i}: {error}: {got:?} vs {want:?}");
    }
}

fn greedy(model: &Blip, embeds: Tensor<3>) -> Vec<Generated> {
    let g = &reference()["greedy"];
    let options = GenerateOptions {
        method: Method::Greedy,
        num_return_sequences: 1,
        max_new_tokens: g["max_new_tokens"].as_u64().unwrap() as usize,
    };
    generate(model, embeds, &prompt(), &options).unwrap()
}

fn check_greedy(generated: &[Generated]) {
    let g = &reference()["greedy"];
    let want = list(&g["ids"], ids);
    assert_eq!(generated.len(), want.len());
    for (i, (got, want)) in generated.iter().zip(want).enumerate() {
        assert_eq!(got.sequences.len(), 1);
        assert_eq!(
            got.sequences[0],
            unpadded(want, prompt().len()),
            "image {i}"
        );
    }
}

#[test]
fn the_tokenizer_gives_transformers_ids() {
    let tokenizer = tokenizer();
    for case in reference()["tokenizer_cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let encoding = tokenizer.encode(text, true).unwrap();
        assert_eq!(encoding.get_ids(), ids(&case["ids"]), "{text:?}");
    }
    let bos = flex().config().text_config.bos_token_id;
    let text = reference()["prompt"].as_str().unwrap();
    assert_eq!(prompt_ids(tokenizer, text, bos).unwrap(), prompt());
    assert_eq!(prompt_ids(tokenizer, "", bos).unwrap(), vec![bos]);
    assert_eq!(tokenizer.token_to_id("[DEC]"), Some(30522));
    assert_eq!(tokenizer.token_to_id("[ENC]"), Some(30523));
}

#[test]
fn flex_embeddings_and_first_step_logits_match() {
    let model = flex();
    let embeds = check_embeds(model, &Device::flex(), 1e-4);
    check_first_step(model, embeds, 1e-4);
}

#[test]
fn greedy_ids_and_texts_match() {
    let model = flex();
    let generated = greedy(model, model.image_embeds(pixels(model, &Device::flex())));
    check_greedy(&generated);
    let texts = list(&reference()["greedy"]["texts"], |t| {
        t.as_str().unwrap().to_owned()
    });
    for (got, want) in generated.iter().zip(texts) {
        assert_eq!(decode(tokenizer(), &got.sequences[0]).unwrap(), want);
    }
    // One image alone gives what it gives in the batch.
    let embeds = model.image_embeds(pixels(model, &Device::flex()));
    let alone = greedy(model, embeds.narrow(0, 1, 1));
    assert_eq!(alone[0].sequences, generated[1].sequences);
    let (a, b) = (alone[0].scores[0], generated[1].scores[0]);
    assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
}

/// The beam search settings of a reference entry.
fn beam_options(b: &Value) -> GenerateOptions {
    let early_stopping = match &b["early_stopping"] {
        Value::Bool(true) => EarlyStopping::Finished,
        Value::String(s) if s == "never" => EarlyStopping::Never,
        _ => EarlyStopping::Heuristic,
    };
    GenerateOptions {
        method: Method::Beam {
            num_beams: b["num_beams"].as_u64().unwrap() as usize,
            length_penalty: b["length_penalty"].as_f64().unwrap_or(1.0) as f32,
            early_stopping,
        },
        num_return_sequences: b["num_return_sequences"].as_u64().unwrap() as usize,
        max_new_tokens: b["max_new_tokens"].as_u64().unwrap() as usize,
    }
}

#[test]
fn beam_search_ids_scores_and_texts_match() {
    let model = flex();
    let embeds = model.image_embeds(pixels(model, &Device::flex()));
    let mut checked = 0;
    // `"beam"`, and any other beam search setting the reference has (`"beam_*"`).
    let entries = reference().as_object().unwrap().iter();
    for (key, b) in entries.filter(|(k, _)| k.starts_with("beam")) {
        checked += 1;
        let options = beam_options(b);
        let generated = generate(model, embeds.clone(), &prompt(), &options).unwrap();
        let want = list(&b["ids"], |image| list(image, ids));
        let scores = list(&b["sequences_scores"], floats);
        assert_eq!(generated.len(), want.len());
        for (i, got) in generated.iter().enumerate() {
            let want: Vec<Vec<u32>> = want[i]
                .iter()
                .map(|s| unpadded(s.clone(), prompt().len()))
                .collect();
            assert_eq!(got.sequences, want, "{key}: image {i}");
            for (g, w) in got.scores.iter().zip(&scores[i]) {
                assert!(
                    (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                    "{key}: image {i}: score {g} vs {w}"
                );
            }
            if let Some(texts) = b.get("texts") {
                let texts = list(&texts[i], |t| t.as_str().unwrap().to_owned());
                let got: Vec<String> = got
                    .sequences
                    .iter()
                    .map(|s| decode(tokenizer(), s).unwrap())
                    .collect();
                assert_eq!(got, texts, "{key}: image {i}");
            }
        }
    }
    assert!(checked > 0, "no beam search in the reference");
}

#[test]
fn nucleus_sampling_is_seeded() {
    let model = flex();
    let embeds = model.image_embeds(pixels(model, &Device::flex()));
    let run = |seed: u64| {
        let options = GenerateOptions {
            method: Method::nucleus(0.9, 1.5, seed),
            num_return_sequences: 4,
            max_new_tokens: 8,
        };
        generate(model, embeds.clone(), &prompt(), &options).unwrap()
    };
    let a = run(7);
    assert_eq!(a, run(7));
    let b = run(8);
    assert_ne!(a, b);
    for image in &a {
        assert_eq!(image.sequences.len(), 4);
        for s in &image.sequences {
            assert!(s.starts_with(&prompt()));
            assert!(s.len() > prompt().len() && s.len() <= prompt().len() + 8);
        }
    }
    // The candidates of one image are not all the same.
    assert!(a
        .iter()
        .any(|image| image.sequences.iter().any(|s| *s != image.sequences[0])));
}

#[test]
fn bad_options_are_clear_errors() {
    let model = flex();
    let embeds = model.image_embeds(pixels(model, &Device::flex()));
    let bad = [
        GenerateOptions {
            num_return_sequences: 2,
            ..GenerateOptions::default()
        },
        GenerateOptions {
            method: Method::beam(2),
            num_return_sequences: 3,
            max_new_tokens: 5,
        },
        GenerateOptions {
            max_new_tokens: 10_000,
            ..GenerateOptions::default()
        },
    ];
    for options in bad {
        let error = generate(model, embeds.clone(), &prompt(), &options)
            .unwrap_err()
            .to_string();
        assert!(error.contains("invalid BLIP generation options"), "{error}");
    }
    // The handler checks its options when it loads: the run stops at start-up.
    let handler = BlipCaptioner::new(fixture()).beam(2).candidates(3);
    let error = handler
        .load(DeviceChoice::Cpu.into())
        .map(|_| ())
        .unwrap_err();
    assert!(error.contains("invalid BLIP generation options"), "{error}");
}

#[test]
fn wgpu_on_the_software_adapter_matches() {
    match tandem_models::device::wgpu_software() {
        Ok(device) => {
            let model = Blip::load(&fixture(), &device).unwrap();
            let embeds = check_embeds(&model, &device, 1e-3);
            check_first_step(&model, embeds.clone(), 1e-3);
            check_greedy(&greedy(&model, embeds));
        }
        Err(error) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs a Vulkan driver, yet: {error}"
            );
            eprintln!("wgpu not checked here: {error}");
        }
    }
}

#[test]
fn missing_and_mismatched_weights_are_clear_errors() {
    let device = Device::flex();
    let error = Blip::load(Path::new("/nonexistent/blip"), &device)
        .unwrap_err()
        .to_string();
    assert!(error.contains("/nonexistent/blip/config.json"), "{error}");

    // The config without the weights.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let error = Blip::load(dir.path(), &device).unwrap_err().to_string();
    assert!(error.contains("model.safetensors"), "{error}");

    // Another model's weights (MiniLM's): every BLIP tensor is missing.
    std::fs::copy(
        fetch::MINILM_WEIGHTS.path().unwrap(),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let error = Blip::load(dir.path(), &device).unwrap_err().to_string();
    assert!(
        error.contains("do not fit the model") && error.contains("vision_model"),
        "{error}"
    );

    // The right weights under a config of another size.
    std::fs::copy(
        fixture().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("config.json")).unwrap())
            .unwrap();
    config["text_config"]["intermediate_size"] = 48.into();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let error = Blip::load(dir.path(), &device).unwrap_err().to_string();
    assert!(
        error.contains("could not be loaded")
            && error.contains("ShapeMismatch")
            && error.contains("intermediate.dense.weight"),
        "{error}"
    );

    // An activation this port does not have.
    config["text_config"]["intermediate_size"] = reference_intermediate().into();
    config["vision_config"]["hidden_act"] = "swish".into();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let error = Blip::load(dir.path(), &device).unwrap_err().to_string();
    assert!(
        error.contains("hidden_act") && error.contains("swish"),
        "{error}"
    );
}

fn reference_intermediate() -> usize {
    flex().config().text_config.intermediate_size
}

type Prediction = PredictionResult<PathBuf, Captions>;

struct Args {
    input: Vec<PathBuf>,
    model: Tuned<BlipCaptioner>,
    out: Collector<Prediction>,
}

pipeline! {
    Caption(args: Args) {
        read(Memory::new(args.input.clone()))
            -> run_inference(args.model.clone())
            -> write(args.out.clone());
    }
}

/// The reference's photos by name.
fn photo(name: &str) -> PathBuf {
    let asset = match name {
        "chelsea.png" => fetch::CHELSEA,
        "astronaut.png" => fetch::ASTRONAUT,
        "camera.png" => fetch::CAMERA,
        "coffee.png" => fetch::COFFEE,
        other => panic!("no sample photo {other}"),
    };
    asset.path().unwrap_or_else(|e| panic!("{e}"))
}

fn run_pipeline(handler: &BlipCaptioner, input: &[PathBuf]) -> Vec<Prediction> {
    let args = Args {
        input: input.to_vec(),
        model: handler.clone().max_batch(2),
        out: Collector::new(),
    };
    let summary = Caption::run_blocking(
        &args,
        &RunConfig {
            device: DeviceChoice::Cpu,
            ..RunConfig::default()
        },
    )
    .unwrap();
    assert!(summary.totals().balanced(), "{summary}");
    let out = args.out.take();
    assert_eq!(out.len(), input.len(), "{summary}");
    out
}

#[test]
fn the_handler_captions_two_photos_as_transformers_does() {
    // Greedy from the photo files: the handler's preprocessing, vision model and decoder give
    // the reference's ids and texts.
    let names = list(&reference()["images"], |n| n.as_str().unwrap().to_owned());
    let input: Vec<PathBuf> = names[..2].iter().map(|n| photo(n)).collect();
    let g = &reference()["greedy"];
    let max_new_tokens = g["max_new_tokens"].as_u64().unwrap() as usize;
    let handler = BlipCaptioner::new(fixture()).max_new_tokens(max_new_tokens);
    let out = run_pipeline(&handler, &input);
    let want_ids = list(&g["ids"], ids);
    let want_texts = list(&g["texts"], |t| t.as_str().unwrap().to_owned());
    for (i, prediction) in out.iter().enumerate() {
        assert_eq!(prediction.example, input[i]);
        let id = format!("blip-{}", fixture().file_name().unwrap().to_string_lossy());
        assert_eq!(*prediction.model_id, id);
        let captions = &prediction.inference;
        assert_eq!(
            captions.token_ids,
            vec![unpadded(want_ids[i].clone(), prompt().len())],
            "{}",
            names[i]
        );
        assert_eq!(captions.captions, vec![want_texts[i].clone()]);
        assert_eq!(captions.scores.len(), 1);
    }

    // Beam search, two captions each.
    let handler = BlipCaptioner::new(fixture())
        .beam(3)
        .candidates(2)
        .max_new_tokens(6);
    for prediction in run_pipeline(&handler, &input) {
        let captions = &prediction.inference;
        assert_eq!(captions.captions.len(), 2);
        assert_eq!(captions.token_ids.len(), 2);
        assert!(captions.scores[0] >= captions.scores[1]);
        for (text, ids) in captions.captions.iter().zip(&captions.token_ids) {
            assert!(text.starts_with("a picture of"), "{text:?}");
            assert!(ids.starts_with(&prompt()) && ids.len() <= prompt().len() + 6);
            assert_eq!(*text, decode(tokenizer(), ids).unwrap());
        }
        eprintln!("{:?}: {:?}", prediction.example, captions.captions);
    }
}

#[test]
fn a_config_takes_transformers_defaults_and_checks_what_it_reads() {
    use tandem_models::blip::BlipConfig;
    let config = BlipConfig::from_json(
        r#"{"vision_config": {"hidden_size": 1024, "num_attention_heads": 16}}"#,
    )
    .unwrap();
    assert_eq!(config.vision_config.image_size, 384);
    assert_eq!(config.vision_config.patch_size, 16);
    assert_eq!(config.text_config.vocab_size, 30524);
    assert_eq!(config.text_config.bos_token_id, 30522);
    assert_eq!(config.text_config.sep_token_id, 102);
    // The cross-attention reads the vision model's hidden size, whatever the text config says.
    assert_eq!(config.text_config.encoder_hidden_size, 1024);
    assert!(config.tie_word_embeddings);
    let error = BlipConfig::from_json(r#"{"text_config": {"hidden_act": "silu"}}"#).unwrap_err();
    assert!(
        error.contains("text_config.hidden_act \"silu\" is not supported"),
        "{error}"
    );
    let error = BlipConfig::from_json(r#"{"vision_config": {"patch_size": 15}}"#).unwrap_err();
    assert!(error.contains("patch_size"), "{error}");
}
