//! CLIP in Burn against transformers' `CLIPModel` on a small random checkpoint
//! (`tests/fixtures/clip-tiny`: text hidden 16, vision 32 px in 8 px patches, projection 16) and
//! against `clip.tokenize` (clip-anytorch) for the token ids; the reference is
//! `tests/reference/clip.json` (the HF processor's pixels for real photos, the ids, and the
//! model's normalised embeddings and `logits_per_image`).
//!
//! Relative error here is per row: `max_i |burn_i - ref_i| / max_i |ref_i|` over one embedding
//! (or one image's logits). On flex it must stay under 1e-4; on wgpu (Mesa's software adapter
//! where there is no GPU) under 1e-3.

use crate::parity::relative_error;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Deserialize;
use tandem::inference::{DeviceChoice, ModelHandler};
use tandem_models::clip::{
    ClipConfig, ClipModel, ClipQuery, ClipRanker, ClipTokenizer, CONTEXT_LENGTH, END_TOKEN,
    START_TOKEN,
};
use tandem_models::Error;

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<i64>,
}

#[derive(Deserialize)]
struct Reference {
    images: Vec<String>,
    pixel_values: Vec<Vec<f32>>,
    texts: Vec<String>,
    input_ids: Vec<Vec<i64>>,
    image_embeds: Vec<Vec<f64>>,
    text_embeds: Vec<Vec<f64>>,
    logits_per_image: Vec<Vec<f64>>,
    tokenizer_cases: Vec<Case>,
}

fn fixture() -> PathBuf {
    crate::captioning::checkpoint("clip")
}

fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| crate::captioning::reference("clip"))
}

fn tokenizer() -> &'static ClipTokenizer {
    static TOKENIZER: OnceLock<ClipTokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| ClipTokenizer::load().unwrap())
}

fn flex() -> &'static (ClipModel, Device) {
    static FLEX: OnceLock<(ClipModel, Device)> = OnceLock::new();
    FLEX.get_or_init(|| {
        let device = Device::flex();
        (ClipModel::load(&fixture(), &device).unwrap(), device)
    })
}

/// The worst [`relative_error`] of the rows.
fn worst(got: &[f32], want: &[Vec<f64>]) -> f64 {
    let width = want[0].len();
    assert_eq!(got.len(), want.len() * width);
    got.chunks(width)
        .zip(want)
        .map(|(g, w)| relative_error(g, w))
        .fold(0.0, f64::max)
}

fn pixels(device: &Device) -> Tensor<4> {
    let r = reference();
    let flat: Vec<f32> = r.pixel_values.iter().flatten().copied().collect();
    let size = ((r.pixel_values[0].len() / 3) as f64).sqrt() as usize;
    Tensor::from_data(
        TensorData::new(flat, [r.pixel_values.len(), 3, size, size]),
        device,
    )
}

fn ids(rows: &[Vec<i64>], device: &Device) -> Tensor<2, Int> {
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), rows[0].len()]), device)
}

/// The reference's embeddings and logits on `device`: the worst relative error of each.
fn errors(model: &ClipModel, device: &Device) -> [f64; 3] {
    let r = reference();
    let images = model.encode_image(pixels(device));
    let texts = model.encode_text(ids(&r.input_ids, device));
    let logits = model.logits_per_image(images.clone(), texts.clone());
    let read = |t: Tensor<2>| t.try_into_vec_as::<f32>().unwrap();
    [
        worst(&read(images), &r.image_embeds),
        worst(&read(texts), &r.text_embeds),
        worst(&read(logits), &r.logits_per_image),
    ]
}

#[test]
fn token_ids_equal_clip_tokenize() {
    let r = reference();
    let tokenizer = tokenizer();
    assert_eq!(tokenizer.vocab_size(), 49408);
    let texts: Vec<&str> = r.texts.iter().map(String::as_str).collect();
    let (flat, width) = tokenizer.tokenize(&texts);
    assert_eq!(width, CONTEXT_LENGTH);
    for ((text, got), want) in texts.iter().zip(flat.chunks(width)).zip(&r.input_ids) {
        assert_eq!(got, &want[..], "{text:?}");
    }
    for case in &r.tokenizer_cases {
        let (got, _) = tokenizer.tokenize(&[&case.text]);
        assert_eq!(got, case.ids, "{:?}", case.text);
    }
}

#[test]
fn token_ids_start_end_and_truncate() {
    let tokenizer = tokenizer();
    assert_eq!(
        tokenizer.ids("", CONTEXT_LENGTH),
        vec![START_TOKEN, END_TOKEN]
    );
    let long = "word ".repeat(200);
    let ids = tokenizer.ids(&long, CONTEXT_LENGTH);
    assert_eq!(ids.len(), CONTEXT_LENGTH);
    assert_eq!((ids[0], ids[76]), (START_TOKEN, END_TOKEN));
    // Cleaning the Python would do: curly quotes, entities, whitespace, case.
    assert_eq!(
        tokenizer.encode("It\u{2019}s  &amp;\tOK"),
        tokenizer.encode("it's & ok")
    );
}

#[test]
fn flex_matches_transformers() {
    let (model, device) = flex();
    let [image, text, logits] = errors(model, device);
    eprintln!("flex: relative errors image {image:e}, text {text:e}, logits {logits:e}");
    assert!(image < 1e-4, "image embeddings: {image:e}");
    assert!(text < 1e-4, "text embeddings: {text:e}");
    assert!(logits < 1e-4, "logits: {logits:e}");
}

#[test]
fn padding_after_the_end_token_changes_nothing() {
    let (model, device) = flex();
    let r = reference();
    let full = model
        .encode_text(ids(&r.input_ids, device))
        .try_into_vec_as::<f32>()
        .unwrap();
    // Trimmed to the longest sequence, and with the padding changed to other ids.
    let longest = r
        .input_ids
        .iter()
        .map(|row| {
            row.iter()
                .position(|&id| id == i64::from(END_TOKEN))
                .unwrap()
                + 1
        })
        .max()
        .unwrap();
    let trimmed: Vec<Vec<i64>> = r
        .input_ids
        .iter()
        .map(|row| row[..longest].to_vec())
        .collect();
    let noisy: Vec<Vec<i64>> = r
        .input_ids
        .iter()
        .map(|row| {
            let end = row
                .iter()
                .position(|&id| id == i64::from(END_TOKEN))
                .unwrap();
            row.iter()
                .enumerate()
                .map(|(i, &id)| if i > end { 320 + i as i64 } else { id })
                .collect()
        })
        .collect();
    for rows in [trimmed, noisy] {
        let got = model
            .encode_text(ids(&rows, device))
            .try_into_vec_as::<f32>()
            .unwrap();
        for (g, f) in got.iter().zip(&full) {
            assert!((g - f).abs() < 1e-6, "{g} vs {f}");
        }
    }
}

#[test]
fn wgpu_matches_transformers() {
    match tandem_models::device::wgpu_software() {
        Ok(device) => {
            let model = ClipModel::load(&fixture(), &device).unwrap();
            let [image, text, logits] = errors(&model, &device);
            eprintln!("wgpu: relative errors image {image:e}, text {text:e}, logits {logits:e}");
            assert!(image < 1e-3, "image embeddings: {image:e}");
            assert!(text < 1e-3, "text embeddings: {text:e}");
            assert!(logits < 1e-3, "logits: {logits:e}");
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
fn the_logit_scale_and_config_load() {
    let (model, _) = flex();
    let config = ClipConfig::load(&fixture()).unwrap();
    assert_eq!(model.image_size(), config.image_size());
    assert_eq!(model.dim(), config.projection_dim);
    assert_eq!(model.max_tokens(), 77);
    let scale = model.logit_scale().try_into_vec_as::<f32>().unwrap();
    assert_eq!(scale.len(), 1);
    // The checkpoint's value (the config's initial one unless trained).
    assert!((f64::from(scale[0]) - config.logit_scale_init_value).abs() < 1e-6);
    // Defaults are ViT-B/32's.
    let defaults = ClipConfig::from_json("{}").unwrap();
    assert_eq!(defaults.image_size(), 224);
    assert_eq!(defaults.vision_config.hidden_size, 768);
    assert_eq!(defaults.text_config.hidden_size, 512);
    assert_eq!(defaults.projection_dim, 512);
}

/// A copy of the small fixture (whatever `TANDEM_CAPTION_REFERENCE` says: the edits below are
/// made for its sizes) with its config edited by `edit`.
fn edited_fixture(edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = || crate::captioning::small_checkpoint("clip");
    let text = std::fs::read_to_string(fixture().join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        fixture().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    dir
}

#[test]
fn weights_of_another_architecture_are_a_clear_error() {
    let dir = edited_fixture(|c| c["text_config"]["hidden_size"] = 32.into());
    let error = ClipModel::load(dir.path(), &Device::flex()).unwrap_err();
    assert!(matches!(error, Error::DoNotFit { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("the CLIP weights"), "{message}");
    assert!(message.contains("token_embedding"), "{message}");

    let dir = edited_fixture(|c| c["vision_config"]["num_hidden_layers"] = 3.into());
    let error = ClipModel::load(dir.path(), &Device::flex()).unwrap_err();
    assert!(
        matches!(&error, Error::DoNotFit { missing, .. } if !missing.is_empty()),
        "{error}"
    );
}

#[test]
fn unsupported_or_broken_configs_are_clear_errors() {
    let dir = edited_fixture(|c| c["vision_config"]["hidden_act"] = "relu".into());
    let error = ClipModel::load(dir.path(), &Device::flex()).unwrap_err();
    assert!(matches!(error, Error::ClipConfig { .. }), "{error}");
    assert!(error.to_string().contains("\"relu\""), "{error}");

    let dir = edited_fixture(|c| c["vision_config"]["patch_size"] = 7.into());
    let error = ClipModel::load(dir.path(), &Device::flex()).unwrap_err();
    assert!(error.to_string().contains("not a multiple"), "{error}");

    let dir = edited_fixture(|_| ());
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let error = ClipModel::load(dir.path(), &Device::flex()).unwrap_err();
    assert!(matches!(error, Error::Unloadable { .. }), "{error}");

    let dir = edited_fixture(|_| ());
    std::fs::write(dir.path().join("model.safetensors"), b"not safetensors").unwrap();
    let error = ClipModel::load(dir.path(), &Device::flex()).unwrap_err();
    assert!(matches!(error, Error::Unloadable { .. }), "{error}");
}

#[test]
fn a_missing_folder_is_a_clear_error() {
    let error = ClipModel::load(Path::new("/no/such/clip"), &Device::flex()).unwrap_err();
    assert!(matches!(error, Error::Missing { .. }), "{error}");
    assert!(
        error.to_string().contains("/no/such/clip/config.json"),
        "{error}"
    );
    let dir = edited_fixture(|_| ());
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let error = ClipModel::load(dir.path(), &Device::flex()).unwrap_err();
    assert!(matches!(error, Error::Missing { .. }), "{error}");
    assert!(error.to_string().contains("model.safetensors"), "{error}");

    let handler = ClipRanker::new("/no/such/clip");
    let Err(error) = handler.load(DeviceChoice::Cpu.into()) else {
        panic!("loaded a missing folder");
    };
    assert!(error.contains("/no/such/clip/config.json"), "{error}");
}

fn photo(name: &str) -> PathBuf {
    tandem_models::fetch::PHOTOS
        .iter()
        .find(|asset| asset.file.ends_with(name))
        .unwrap_or_else(|| panic!("no sample photo {name}"))
        .path()
        .unwrap()
}

#[test]
fn the_ranker_ranks_captions_end_to_end() {
    let r = reference();
    let handler = ClipRanker::new(fixture());
    let id = format!("clip-{}", fixture().file_name().unwrap().to_string_lossy());
    assert_eq!(handler.model_id(), id);
    let loaded = handler.load(DeviceChoice::Cpu.into()).unwrap();
    assert_eq!(loaded.ids, vec![id]);
    let mut model = loaded.model;
    let queries: Vec<ClipQuery> = r.images[..2]
        .iter()
        .enumerate()
        .map(|(i, name)| ClipQuery {
            image: photo(name),
            captions: r.texts[i..].to_vec(),
        })
        .collect();
    let prepared: Vec<_> = queries
        .iter()
        .map(|q| handler.prepare(q).unwrap())
        .collect();
    let batch = handler.infer(&mut model, prepared.clone()).unwrap();
    assert_eq!(batch.len(), 2);
    for (query, ranked) in queries.iter().zip(&batch) {
        assert_eq!(ranked.captions.len(), query.captions.len());
        let total: f32 = ranked.captions.iter().map(|c| c.score).sum();
        assert!((total - 1.0).abs() < 1e-5, "scores sum to {total}");
        for pair in ranked.captions.windows(2) {
            assert!(pair[0].logit >= pair[1].logit, "{ranked:?}");
            assert!(pair[0].score >= pair[1].score, "{ranked:?}");
        }
        let mut captions: Vec<_> = ranked.captions.iter().map(|c| &c.caption).collect();
        captions.sort();
        let mut want: Vec<_> = query.captions.iter().collect();
        want.sort();
        assert_eq!(captions, want);
    }
    // Deterministic, and the same alone as in a batch.
    assert_eq!(handler.infer(&mut model, prepared.clone()).unwrap(), batch);
    for (p, ranked) in prepared.into_iter().zip(&batch) {
        let alone = handler.infer(&mut model, vec![p]).unwrap();
        assert_eq!(alone[0].captions.len(), ranked.captions.len());
        for (a, b) in alone[0].captions.iter().zip(&ranked.captions) {
            assert_eq!(a.caption, b.caption);
            assert!((a.logit - b.logit).abs() < 1e-4, "{a:?} vs {b:?}");
        }
    }

    // No captions, or an unreadable image: that query's error, a clear one.
    let error = handler
        .prepare(&ClipQuery {
            image: photo(&r.images[0]),
            captions: Vec::new(),
        })
        .unwrap_err();
    assert!(error.contains("no captions"), "{error}");
    let error = handler
        .prepare(&ClipQuery {
            image: "/no/such/image.png".into(),
            captions: vec!["a cat".into()],
        })
        .unwrap_err();
    assert!(error.contains("/no/such/image.png"), "{error}");
}

/// Texts that exercise the cleaning (ftfy's part done here, the HTML unescaping) and the
/// pattern on other scripts, with the ids `clip.tokenize(text, truncate=True)` gives
/// (clip-anytorch 2.6.0 with ftfy 6.3.1), up to the end token.
const CLEANING_CASES: &[(&str, &[i64])] = &[
    ("Ǆ ß İ", &[49406, 67, 129, 378, 127, 509, 328, 16384, 49407]),
    (
        "ﬁ ligature ﬃ ﬅ",
        &[49406, 3589, 19915, 4490, 1021, 328, 129, 123, 339, 49407],
    ),
    (
        "it’s “quoted” ‘x’",
        &[49406, 585, 568, 257, 27706, 257, 262, 343, 262, 49407],
    ),
    (
        "ＦＵＬＬ\u{3000}ｗｉｄｔｈ！ ｶﾀｶﾅ",
        &[
            49406, 1476, 23571, 256, 37367, 34941, 37367, 2429, 488, 49407,
        ],
    ),
    (
        "&amp;amp; &lt;b&gt; &#39;s &#x27;t &#150; &ampere; &copy2026 &nbsp;x",
        &[
            49406, 261, 283, 321, 285, 568, 713, 1224, 261, 642, 282, 5811, 273, 271, 273, 277,
            343, 49407,
        ],
    ),
    (
        "\u{feff}bom\u{200b}zero width",
        &[49406, 19469, 9844, 5848, 23571, 49407],
    ),
    (
        "ctrl\u{7}bell\u{1b}[31mred",
        &[49406, 35602, 75, 5417, 736, 49407],
    ),
    ("e\u{301} cafe\u{301}", &[49406, 4166, 15304, 49407]),
    (
        "ΟΔΟΣ σοφός",
        &[
            49406, 138, 123, 138, 112, 138, 123, 139, 480, 139, 225, 138, 123, 139, 228, 139, 234,
            139, 480, 49407,
        ],
    ),
    (
        "١٢٣ x² Ⅻ ½",
        &[
            49406, 149, 350, 149, 351, 149, 352, 343, 41175, 158, 227, 375, 33613, 49407,
        ],
    ),
    (
        "한국어 텍스트",
        &[
            49406, 15197, 250, 31871, 255, 31625, 368, 169, 227, 235, 20305, 39820, 49407,
        ],
    ),
    (
        "مرحبا بالعالم",
        &[
            49406, 12986, 10948, 25722, 16378, 22625, 16378, 12973, 18843, 12973, 29945, 49407,
        ],
    ),
    (
        "tab\u{9}sep\u{a0}nbsp\u{2003}em\u{3000}ideo",
        &[49406, 14724, 10434, 6459, 4393, 2270, 1909, 334, 49407],
    ),
    (
        "ALL CAPS SHOUTING!!!",
        &[49406, 615, 23185, 26464, 995, 49407],
    ),
    ("ﬆ", &[49406, 545, 49407]),
    ("ŉ", &[49406, 262, 333, 49407]),
    (
        "\u{2028}line\u{2029}para\u{85}nel",
        &[49406, 1148, 8976, 959, 2693, 49407],
    ),
    ("  \u{1c} x \u{1f}  ", &[49406, 343, 49407]),
    ("a\u{0}b", &[49406, 3937, 49407]),
    (
        "'S 'T 'RE 'VE 'M 'LL 'D",
        &[49406, 568, 713, 982, 1200, 880, 1342, 1896, 49407],
    ),
    ("don’t you’ll", &[49406, 847, 713, 592, 1342, 49407]),
    ("<|endoftext|> in middle", &[49406, 49407, 530, 3694, 49407]),
    (
        "K Kelvin ſ long s",
        &[49406, 330, 32859, 129, 379, 1538, 338, 49407],
    ),
    (
        "1,000.50$ 50% #tag @user http://x.co/a?b=c&d=e",
        &[
            49406, 272, 267, 271, 271, 271, 269, 276, 271, 259, 276, 271, 260, 258, 3640, 287,
            7031, 15066, 12441, 343, 269, 1320, 270, 320, 286, 321, 284, 322, 261, 323, 284, 324,
            49407,
        ],
    ),
];

#[test]
fn token_ids_equal_clip_tokenize_on_messy_text() {
    for (text, want) in CLEANING_CASES {
        let (got, _) = tokenizer().tokenize(&[text]);
        assert_eq!(&got[..want.len()], *want, "{text:?}");
        assert!(got[want.len()..].iter().all(|&id| id == 0), "{text:?}");
    }
    // Mojibake is where this tokenizer differs: ftfy repairs `cafÃ©` to `café`, this does not.
    assert_ne!(tokenizer().encode("cafÃ©"), tokenizer().encode("café"));
}

#[test]
fn the_end_token_rule_follows_the_config() {
    // With `eos_token_id` 320 (`a`), the text is pooled at the first 320: what follows it does
    // not count; with the legacy 2, at the largest id.
    let dir = edited_fixture(|c| c["text_config"]["eos_token_id"] = 320.into());
    let device = Device::flex();
    let model = ClipModel::load(dir.path(), &device).unwrap();
    let (legacy, _) = flex();
    let row = vec![
        START_TOKEN as i64,
        1125,
        320,
        539,
        320,
        2368,
        END_TOKEN as i64,
    ];
    let encode = |model: &ClipModel, row: &[i64]| {
        model
            .encode_text(ids(&[row.to_vec()], &device))
            .try_into_vec_as::<f32>()
            .unwrap()
    };
    let full = encode(&model, &row);
    let cut = encode(&model, &row[..3]);
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    assert!(close(&full, &cut), "{full:?} vs {cut:?}");
    // Without that first 320, the next one counts.
    let mut later = row.clone();
    later[2] = 539;
    assert!(!close(&full, &encode(&model, &later)));
    assert!(close(&encode(&model, &later), &encode(&model, &later[..5])));
    // The legacy rule on the same row: pooled at the end token, the last position.
    let legacy_full = encode(legacy, &row);
    assert!(close(&legacy_full, &encode(legacy, &row)));
    assert!(!close(&legacy_full, &encode(legacy, &row[..6])));
    // No end token: position 0, as torch's argmax of all zeros.
    let none = vec![START_TOKEN as i64, 1125, 539];
    assert!(close(&encode(&model, &none), &encode(&model, &none[..1])));
}

/// The ranker from image paths to ranked captions gives transformers' logits (the pixels the
/// preprocessing makes are the HF processor's) and their softmax.
#[test]
fn the_ranker_gives_the_reference_logits() {
    let r = reference();
    let handler = ClipRanker::new(fixture());
    let mut model = handler.load(DeviceChoice::Cpu.into()).unwrap().model;
    let prepared: Vec<_> = r
        .images
        .iter()
        .map(|name| {
            handler
                .prepare(&ClipQuery {
                    image: photo(name),
                    captions: r.texts.clone(),
                })
                .unwrap()
        })
        .collect();
    for (p, want) in prepared.iter().zip(&r.pixel_values) {
        let diff = p
            .pixels
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            diff < 1e-5,
            "the preprocessing is not the HF processor's: {diff}"
        );
    }
    let ranked = handler.infer(&mut model, prepared).unwrap();
    for (ranked, want) in ranked.iter().zip(&r.logits_per_image) {
        let mut logits = vec![0f32; want.len()];
        let mut scores = vec![0f32; want.len()];
        for c in &ranked.captions {
            let i = r.texts.iter().position(|t| *t == c.caption).unwrap();
            (logits[i], scores[i]) = (c.logit, c.score);
        }
        let error = relative_error(&logits, want);
        assert!(error < 1e-4, "logits: {error:e}");
        let top = want.iter().copied().fold(f64::MIN, f64::max);
        let total: f64 = want.iter().map(|w| (w - top).exp()).sum();
        for (score, w) in scores.iter().zip(want) {
            let expected = (w - top).exp() / total;
            assert!(
                (f64::from(*score) - expected).abs() < 1e-5,
                "{score} vs {expected}"
            );
        }
    }
}
