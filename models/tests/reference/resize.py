#!/usr/bin/env python3
"""Pillow's `Image.resize` and transformers' CLIP / BLIP image processors on scikit-image's sample
photos, for models/tests/suite/resize.rs (tandem-models' `resize` module and the CLIP / BLIP
`prepare_rgb`).

How to rerun (from the repository root):

    python3 -m pip install pillow numpy transformers   # Pillow 13.0.0, transformers 5.24.0 here
    cargo test -p tandem-models --test suite resize::   # fetches the photos into ~/.cache/tandem
    python3 models/tests/reference/resize.py
    # -> writes models/tests/reference/resize.json (then rerun the cargo test to compare)

The photos are read from `$TANDEM_HOME` (else `~/.cache/tandem`), where `tandem_models::fetch`
puts them, and converted to RGB as transformers does (`convert("RGB")`: camera.png is grayscale).

Recorded per case, compactly: the crc32 (zlib's, the IEEE polynomial `crc32fast` computes) of the
uint8 HWC buffer (resize) or of the float32 little-endian CHW buffer (preprocessing), with a few
values and (preprocessing) the sum, so a mismatch says by how much.

The processors are the PIL-backend ones, `CLIPImageProcessorPil` and `BlipImageProcessorPil`,
with the default configuration of openai/clip-vit-base-patch32 and Salesforce/blip-* (bicubic,
OpenAI's mean and std, rescale 1/255), and only the size changed. transformers 5 defaults to the
torchvision backend (`CLIPImageProcessor`) when torchvision is installed, whose uint8 antialiased
bicubic resize differs from Pillow's by a level here and there: the PIL one is the reference.
"""

import json
import os
import zlib
from pathlib import Path

import numpy as np
import PIL
import transformers
from PIL import Image
from transformers import BlipImageProcessorPil, CLIPImageProcessorPil

HERE = Path(__file__).resolve().parent
HOME = Path(os.environ.get("TANDEM_HOME") or Path.home() / ".cache" / "tandem")
DATA = HOME / "scikit-image-0.25.2" / "skimage" / "data"
PHOTOS = {
    "chelsea": "chelsea.png",  # 451x300 RGB
    "astronaut": "astronaut.png",  # 512x512 RGB
    "coffee": "coffee.png",  # 600x400 RGB
    "camera": "camera.png",  # 512x512 grayscale
    "motorcycle": "motorcycle_left.png",  # 741x500 RGB
}
# Made from those, for portrait and tall inputs (the test derives them the same way).
DERIVED = {
    # chelsea turned a quarter counter-clockwise: 300x451.
    "chelsea_portrait": lambda: rgb("chelsea").transpose(Image.Transpose.ROTATE_90),
    # a 100x400 strip of coffee (columns 250..350): taller than twice its width.
    "coffee_strip": lambda: rgb("coffee").crop((250, 0, 350, 400)),
}
FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}
# (photo, width, height): down, up, mixed, one axis only, square.
SIZES = [
    ("chelsea", 32, 32),
    ("chelsea", 224, 148),
    ("chelsea", 700, 466),
    ("chelsea", 200, 600),
    ("chelsea", 451, 150),
    ("chelsea", 100, 300),
    ("astronaut", 224, 224),
    ("astronaut", 384, 384),
    ("astronaut", 1000, 333),
    ("coffee", 336, 224),
    ("coffee", 383, 257),
    ("camera", 224, 224),
    ("camera", 97, 613),
    ("motorcycle", 331, 224),
    ("motorcycle", 384, 384),
    # The height loses more than twice as many pixels as the width: Pillow 13 goes vertical first.
    ("camera", 400, 100),
    ("coffee", 560, 80),
    ("chelsea", 345, 51),
    ("chelsea", 316, 42),  # just under that line: horizontal first
    ("chelsea_portrait", 384, 384),
    ("chelsea_portrait", 224, 336),
    ("coffee_strip", 32, 128),
    ("coffee_strip", 50, 100),
]
EXTRA_FILTERS = [("chelsea", 224, 148), ("coffee", 700, 500)]


def rgb(photo):
    if photo in DERIVED:
        return DERIVED[photo]()
    return Image.open(DATA / PHOTOS[photo]).convert("RGB")


def crc(buffer):
    return zlib.crc32(buffer.tobytes()) & 0xFFFFFFFF


def resize_case(photo, width, height, filter_name):
    out = np.asarray(rgb(photo).resize((width, height), FILTERS[filter_name]))
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
    flat = out.reshape(-1)
    picks = sorted({0, 1, 2, flat.size // 2, flat.size // 3, flat.size - 1})
    return {
        "photo": photo,
        "width": width,
        "height": height,
        "filter": filter_name,
        "crc32": crc(out),
        "values": [[i, int(flat[i])] for i in picks],
    }


def preprocess_case(model, photo, size):
    if model == "clip":
        processor = CLIPImageProcessorPil(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}
        )
    else:
        processor = BlipImageProcessorPil(size={"height": size, "width": size})
    image = DERIVED[photo]() if photo in DERIVED else Image.open(DATA / PHOTOS[photo])
    out = processor(images=image, return_tensors="np")["pixel_values"][0]
    assert out.shape == (3, size, size) and out.dtype == np.float32, (out.shape, out.dtype)
    flat = out.astype("<f4").reshape(-1)
    picks = sorted({0, 1, size * size + 7, flat.size // 2, 2 * size * size + 3, flat.size - 1})
    return {
        "model": model,
        "photo": photo,
        "size": size,
        "crc32": crc(flat),
        "sum": float(flat.astype(np.float64).sum()),
        "values": [[i, float(flat[i])] for i in picks],
    }


def main():
    resize = [
        resize_case(photo, w, h, f) for photo, w, h in SIZES for f in ("bicubic", "bilinear")
    ]
    resize += [
        resize_case(photo, w, h, f)
        for photo, w, h in EXTRA_FILTERS
        for f in ("box", "hamming", "lanczos")
    ]
    preprocessing = [
        preprocess_case(model, photo, size)
        for model, sizes in (("clip", (32, 224)), ("blip", (32, 384)))
        for size in sizes
        for photo in [*PHOTOS, *DERIVED]
    ]
    decoded = {photo: crc(np.asarray(rgb(photo))) for photo in PHOTOS}
    reference = {
        "generated_by": "models/tests/reference/resize.py",
        "pillow": PIL.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "decoded_rgb_crc32": decoded,
        "resize": resize,
        "preprocessing": preprocessing,
    }
    path = HERE / "resize.json"
    # One case per line: compact, and a regenerated file diffs case by case.
    lines = []
    for key, value in reference.items():
        if isinstance(value, list):
            cases = ",\n".join("  " + json.dumps(case) for case in value)
            lines.append(f"{json.dumps(key)}: [\n{cases}\n ]")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value)}")
    path.write_text("{\n " + ",\n ".join(lines) + "\n}\n")
    print(f"wrote {path}: {len(resize)} resize cases, {len(preprocessing)} preprocessing cases")


if __name__ == "__main__":
    main()
