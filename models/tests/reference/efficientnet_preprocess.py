#!/usr/bin/env python3
"""TensorFlow's own EfficientNet-Lite evaluation preprocessing on the sample photos, as a reference
for tandem's (models/src/efficientnet/preprocessing.rs).

How to rerun (from the repository root; any recent TensorFlow for CPU, e.g. 2.21.0 on Python 3.11):

    python3 -m venv /tmp/venv-tf && /tmp/venv-tf/bin/pip install tensorflow-cpu
    /tmp/venv-tf/bin/python models/tests/reference/efficientnet_preprocess.py
    # -> writes models/tests/reference/efficientnet_preprocess.json
    # optional: also compare every value with the inputs the Rust side wrote
    # (TANDEM_EFFICIENTNET_DUMP=DIR cargo test -p tandem-models --test suite efficientnet::flex_logits):
    /tmp/venv-tf/bin/python models/tests/reference/efficientnet_preprocess.py --compare DIR

Upstream is tensorflow/tpu, models/official/efficientnet/, at 8f817a89d3645e12c772555a4e7c40474c8984c4
(2020-03-03, the commit that published the Lite checkpoints). Its evaluation (main.py --mode=eval)
runs preprocessing.preprocess_for_eval with resize_method=tf.image.ResizeMethod.BILINEAR for
"efficientnet-lite*" (main.py lines 650-655) and normalises with the Lite builder's MEAN_RGB = 127,
STDDEV_RGB = 128 (lite/efficientnet_lite_builder.py lines 29-30; main.py normalize_features, lines
322-332). The functions below are copied from preprocessing.py (Apache-2.0, (c) 2019 The
TensorFlow Authors) with these changes: upstream reads only JPEG (tf.image.extract_jpeg_shape,
tf.image.decode_and_crop_jpeg), and the photos are PNG, so the image is decoded (channels=3, as
upstream) and then cropped with the same window; the crop window is returned too (for the JSON);
the logging is left out. Everything runs in a tf.function on the encoded
bytes, as upstream's tf.data graph does, so the cropped image's shape is not static and the
resize always runs (in eager mode tf.compat.v1.image.resize skips a resize to the same size and
returns the uint8 image, which convert_image_dtype would then scale by 1/255).

The JSON holds, per model and photo: the crop window, the sha256 of the result (CHW, little-endian
f32, the layout tandem's prepare returns), its sum and sum of squares (float64 over the f32
values), its min and max, and the values at fixed CHW indices (SAMPLES).
"""

import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

MODELS = {"efficientnet-lite0": 224, "efficientnet-lite2": 260}
from sample_photos import PHOTOS  # noqa: E402
SAMPLES = 64


def samples(size):
    """Fixed CHW indices: the four corners of each plane, then a stride through the whole array."""
    n = 3 * size * size
    plane = size * size
    corners = [c * plane + i for c in range(3) for i in (0, size - 1, plane - size, plane - 1)]
    return corners + [(k * 7919 + 13) % n for k in range(SAMPLES - len(corners))]


def home():
    if os.environ.get("TANDEM_HOME"):
        return Path(os.environ["TANDEM_HOME"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ["HOME"], ".cache")
    return Path(base) / "tandem"


# ------------------------------------------------ upstream, preprocessing.py at 8f817a8 (lines 25-26, 88-135, 203-222)
IMAGE_SIZE = 224
CROP_PADDING = 32
MEAN_RGB = [127.0, 127.0, 127.0]  # lite/efficientnet_lite_builder.py lines 29-30
STDDEV_RGB = [128.0, 128.0, 128.0]


def _resize_image(image, image_size, method=None):  # (upstream also logs the method)
    if method is not None:
        return tf.image.resize([image], [image_size, image_size], method)[0]
    return tf.image.resize_bicubic([image], [image_size, image_size])[0]


def _decode_and_center_crop(image_bytes, image_size, resize_method=None):
    """Crops to center of image with padding then scales image_size."""
    # upstream: shape = tf.image.extract_jpeg_shape(image_bytes)
    decoded = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    shape = tf.shape(decoded)
    image_height = shape[0]
    image_width = shape[1]

    padded_center_crop_size = tf.cast(
        ((image_size / (image_size + CROP_PADDING)) *
         tf.cast(tf.minimum(image_height, image_width), tf.float32)),
        tf.int32)

    offset_height = ((image_height - padded_center_crop_size) + 1) // 2
    offset_width = ((image_width - padded_center_crop_size) + 1) // 2
    crop_window = tf.stack([offset_height, offset_width,
                            padded_center_crop_size, padded_center_crop_size])
    # upstream: image = tf.image.decode_and_crop_jpeg(image_bytes, crop_window, channels=3)
    image = tf.slice(decoded, [offset_height, offset_width, 0],
                     [padded_center_crop_size, padded_center_crop_size, 3])
    image = _resize_image(image, image_size, resize_method)
    return image, crop_window


def preprocess_for_eval(image_bytes, use_bfloat16, image_size=IMAGE_SIZE, resize_method=None):
    image, crop_window = _decode_and_center_crop(image_bytes, image_size, resize_method)
    image = tf.reshape(image, [image_size, image_size, 3])
    image = tf.image.convert_image_dtype(
        image, dtype=tf.bfloat16 if use_bfloat16 else tf.float32)
    return image, crop_window


def normalize_features(features, mean_rgb, stddev_rgb):  # main.py lines 322-326
    features -= tf.constant(mean_rgb, shape=[1, 1, 3], dtype=features.dtype)
    features /= tf.constant(stddev_rgb, shape=[1, 1, 3], dtype=features.dtype)
    return features
# ------------------------------------------------ end of upstream


def lite_eval_input(size):
    """main.py's evaluation input for efficientnet-lite*: bilinear, float32, normalised."""

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def run(image_bytes):
        image, window = preprocess_for_eval(
            image_bytes, use_bfloat16=False, image_size=size,
            resize_method=tf.image.ResizeMethod.BILINEAR)
        return normalize_features(image, MEAN_RGB, STDDEV_RGB), window

    return run


def main():
    compare = None
    if len(sys.argv) == 3 and sys.argv[1] == "--compare":
        compare = Path(sys.argv[2])
    elif len(sys.argv) != 1:
        sys.exit(__doc__)
    out = {"note": "written by models/tests/reference/efficientnet_preprocess.py; see its header to rerun",
           "tensorflow": tf.__version__, "models": {}}
    worst = 0.0
    for name, size in MODELS.items():
        run = lite_eval_input(size)
        per_photo = {}
        for photo, rel in PHOTOS.items():
            image, window = run(tf.constant((home() / rel).read_bytes()))
            chw = np.ascontiguousarray(image.numpy().transpose(2, 0, 1)).astype("<f4")
            flat = chw.reshape(-1)
            wide = flat.astype(np.float64)
            idx = samples(size)
            per_photo[photo] = {
                "crop_window": [int(v) for v in window.numpy()],  # top, left, height, width
                "sha256": hashlib.sha256(flat.tobytes()).hexdigest(),
                "sum": float(wide.sum()),
                "sum_of_squares": float((wide * wide).sum()),
                "min": float(flat.min()),
                "max": float(flat.max()),
                "sample_indices": idx,
                "samples": [float(flat[i]) for i in idx],
            }
            line = f"{name} {photo}: window {per_photo[photo]['crop_window']}, sum {wide.sum():.6f}"
            if compare is not None:
                rust = np.frombuffer((compare / f"{name}-{photo}.f32").read_bytes(), dtype="<f4")
                diff = float(np.abs(rust.astype(np.float64) - wide).max())
                worst = max(worst, diff)
                line += f", max |Rust - TF| {diff:.3g} ({np.count_nonzero(rust != flat)} values differ)"
            print(line)
        out["models"][name] = per_photo
    if compare is not None:
        print(f"largest |Rust - TF| over all values: {worst:.3g}")
    dest = Path(__file__).with_suffix(".json")
    dest.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
