#!/usr/bin/env python3
"""Independent NumPy reference for MTCNN's P-Net, R-Net and O-Net (facenet-pytorch 2.6.0), for
models/tests/suite/mtcnn.rs.

Rerun (from the repository root; writes models/tests/reference/mtcnn.json):

    python3 -m pip install --user numpy pillow
    cargo run -p tandem-models --bin fetch-models      # or let `cargo test` fetch the weights
    python3 models/tests/reference/mtcnn.py [TANDEM_HOME]

TANDEM_HOME is the tandem cache ($TANDEM_HOME, else $XDG_CACHE_HOME/tandem, else ~/.cache/tandem);
the weights are facenet-pytorch-2.6.0/facenet_pytorch/data/{pnet,rnet,onet}.pt and the photo
scikit-image-0.25.2/skimage/data/astronaut.png.

No torch: the .pt files are in torch's LEGACY (non-zip) format, read here with `pickle` alone:
a pickled magic number, protocol version and sys info, then the pickled state dict whose tensors
refer to storages by persistent id, then the pickled list of storage keys, then each storage as
an int64 element count followed by its raw little-endian bytes.

The forward passes are plain NumPy ports of facenet_pytorch/models/mtcnn.py, in float64 from the
float32 weights: valid 3x3/2x2/1x1 convolutions, per-channel PReLU, max-pooling with
ceil_mode=True (the last window may hang over the bottom/right edge and sees only the pixels
inside), softmax over the channels, and for R-Net/O-Net the `permute(0, 3, 2, 1)` (height and
width transposed) before flattening into the dense layer.

Inputs are crops of the real photo, each `[x0, y0, width, height, k]`: the region
x0..x0+width, y0..y0+height of the 512x512 RGB image, shrunk k times by averaging k x k blocks
(k a power of two, so every value is exact in float32 as well), then normalised as upstream,
(v - 127.5) * 0.0078125. The Rust test rebuilds the same inputs from the same PNG with its own
decoder and checks the sum of each input (`input_sum`) before comparing outputs.
"""

import collections
import hashlib
import json
import os
import pickle
import sys

import numpy as np
from PIL import Image

# P-Net on shrunk regions (non-square, with odd sizes so that ceil_mode matters).
PNET_INPUTS = [
    [112, 12, 228, 196, 4],  # head and shoulders, 57x49
    [150, 30, 130, 140, 2],  # the face, 65x70
]
# R-Net on 24x24 inputs: the face, a part of it, a tight crop, the background.
RNET_INPUTS = [
    [170, 50, 96, 96, 4],
    [190, 70, 48, 48, 2],
    [200, 90, 24, 24, 1],
    [384, 384, 96, 96, 4],
]
# O-Net on 48x48 inputs.
ONET_INPUTS = [
    [170, 50, 96, 96, 2],
    [120, 10, 192, 192, 4],
    [210, 80, 48, 48, 1],
    [0, 256, 192, 192, 4],
]


def tandem_home():
    if len(sys.argv) > 1:
        return sys.argv[1]
    if os.environ.get("TANDEM_HOME"):
        return os.environ["TANDEM_HOME"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ["HOME"], ".cache")
    return os.path.join(base, "tandem")


# ----------------------------------------------------------------------------------------------
# The legacy torch reader.

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


class StorageRef:
    def __init__(self, dtype, key, size):
        self.dtype, self.key, self.size = dtype, key, size


class TensorRef:
    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride


class StorageType:
    def __init__(self, name):
        self.dtype = DTYPES[name]


def rebuild_tensor_v2(storage, offset, shape, stride, *_):
    return TensorRef(storage, offset, tuple(shape), tuple(stride))


class LegacyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return rebuild_tensor_v2
        if module == "torch" and name in DTYPES:
            return StorageType(name)
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, size, view = pid
        assert kind == "storage" and view is None, pid
        return StorageRef(storage_type.dtype, key, size)


def load_legacy_pt(path):
    with open(path, "rb") as f:
        assert pickle.load(f) == LEGACY_MAGIC, f"{path}: not a legacy torch file"
        assert pickle.load(f) == 1001, "unknown protocol version"
        sys_info = pickle.load(f)
        assert sys_info["little_endian"], sys_info
        state = LegacyUnpickler(f).load()
        keys = pickle.load(f)
        raw = {}
        for key in keys:
            count = int(np.frombuffer(f.read(8), "<i8")[0])
            refs = [t.storage for t in state.values() if t.storage.key == key]
            dtype = np.dtype(refs[0].dtype).newbyteorder("<")
            raw[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype)
        assert f.read() == b"", "trailing bytes"
    out = {}
    for name, t in state.items():
        data = raw[t.storage.key]
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[t.offset :], shape=t.shape, strides=[s * item for s in t.stride]
        )
        out[name] = np.array(view, dtype=np.float64)
    return out


# ----------------------------------------------------------------------------------------------
# The layers.


def conv2d(x, w, b):
    """Valid convolution, stride 1. x [n, c, h, w], w [o, c, kh, kw]."""
    kh, kw = w.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    # win: [n, c, h', w', kh, kw]
    return np.einsum("nchwij,ocij->nohw", win, w, optimize=True) + b[None, :, None, None]


def prelu(x, a):
    shape = [1, a.shape[0]] + [1] * (x.ndim - 2)
    return np.where(x > 0, x, x * a.reshape(shape))


def pooled_size(size, kernel, stride):
    """PyTorch's output size with ceil_mode=True and no padding."""
    out = -(-(size - kernel) // stride) + 1
    if (out - 1) * stride >= size:
        out -= 1
    return out


def max_pool_ceil(x, kernel, stride):
    n, c, h, w = x.shape
    oh, ow = pooled_size(h, kernel, stride), pooled_size(w, kernel, stride)
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            y0, x0 = i * stride, j * stride
            out[:, :, i, j] = x[:, :, y0 : y0 + kernel, x0 : x0 + kernel].max(axis=(2, 3))
    return out


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def linear(x, p, name):
    return x @ p[name + ".weight"].T + p[name + ".bias"]


def flatten_whc(x):
    return x.transpose(0, 3, 2, 1).reshape(x.shape[0], -1)


def pnet(p, x):
    x = prelu(conv2d(x, p["conv1.weight"], p["conv1.bias"]), p["prelu1.weight"])
    x = max_pool_ceil(x, 2, 2)
    x = prelu(conv2d(x, p["conv2.weight"], p["conv2.bias"]), p["prelu2.weight"])
    x = prelu(conv2d(x, p["conv3.weight"], p["conv3.bias"]), p["prelu3.weight"])
    probs = softmax(conv2d(x, p["conv4_1.weight"], p["conv4_1.bias"]), 1)
    boxes = conv2d(x, p["conv4_2.weight"], p["conv4_2.bias"])
    return {"boxes": boxes, "probs": probs}


def rnet(p, x):
    x = prelu(conv2d(x, p["conv1.weight"], p["conv1.bias"]), p["prelu1.weight"])
    x = max_pool_ceil(x, 3, 2)
    x = prelu(conv2d(x, p["conv2.weight"], p["conv2.bias"]), p["prelu2.weight"])
    x = max_pool_ceil(x, 3, 2)
    x = prelu(conv2d(x, p["conv3.weight"], p["conv3.bias"]), p["prelu3.weight"])
    x = prelu(linear(flatten_whc(x), p, "dense4"), p["prelu4.weight"])
    return {"boxes": linear(x, p, "dense5_2"), "probs": softmax(linear(x, p, "dense5_1"), 1)}


def onet(p, x):
    x = prelu(conv2d(x, p["conv1.weight"], p["conv1.bias"]), p["prelu1.weight"])
    x = max_pool_ceil(x, 3, 2)
    x = prelu(conv2d(x, p["conv2.weight"], p["conv2.bias"]), p["prelu2.weight"])
    x = max_pool_ceil(x, 3, 2)
    x = prelu(conv2d(x, p["conv3.weight"], p["conv3.bias"]), p["prelu3.weight"])
    x = max_pool_ceil(x, 2, 2)
    x = prelu(conv2d(x, p["conv4.weight"], p["conv4.bias"]), p["prelu4.weight"])
    x = prelu(linear(flatten_whc(x), p, "dense5"), p["prelu5.weight"])
    return {
        "boxes": linear(x, p, "dense6_2"),
        "landmarks": linear(x, p, "dense6_3"),
        "probs": softmax(linear(x, p, "dense6_1"), 1),
    }


# ----------------------------------------------------------------------------------------------


def make_input(image, spec):
    """[1, 3, h, w] normalised input for a crop spec [x0, y0, width, height, k]."""
    x0, y0, width, height, k = spec
    assert width % k == 0 and height % k == 0
    region = image[y0 : y0 + height, x0 : x0 + width].astype(np.int64)
    assert region.shape == (height, width, 3), spec
    blocks = region.reshape(height // k, k, width // k, k, 3).sum(axis=(1, 3))
    values = blocks.astype(np.float64) / (k * k)
    return ((values - 127.5) * 0.0078125).transpose(2, 0, 1)[None]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def rounded(a):
    return [float(f"{v:.9g}") for v in np.asarray(a).ravel()]


def main():
    home = tandem_home()
    data = os.path.join(home, "facenet-pytorch-2.6.0", "facenet_pytorch", "data")
    photo = os.path.join(home, "scikit-image-0.25.2", "skimage", "data", "astronaut.png")
    image = np.asarray(Image.open(photo).convert("RGB"))
    assert image.shape == (512, 512, 3)

    out = {"photo_sha256": sha256(photo), "networks": {}}
    for name, forward, specs in [
        ("pnet", pnet, PNET_INPUTS),
        ("rnet", rnet, RNET_INPUTS),
        ("onet", onet, ONET_INPUTS),
    ]:
        path = os.path.join(data, f"{name}.pt")
        params = load_legacy_pt(path)
        cases = []
        for spec in specs:
            x = make_input(image, spec)
            outputs = forward(params, x)
            cases.append(
                {
                    "crop": spec,
                    "input_shape": list(x.shape),
                    "input_sum": float(x.sum()),
                    "outputs": {
                        k: {"shape": list(v.shape), "values": rounded(v)}
                        for k, v in outputs.items()
                    },
                }
            )
            face = outputs["probs"][:, 1]
            print(f"{name} {spec}: input {list(x.shape)}, face probability max {face.max():.4f}")
        out["networks"][name] = {
            "weights_sha256": sha256(path),
            "parameters": {k: list(v.shape) for k, v in params.items()},
            "cases": cases,
        }

    target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mtcnn.json")
    with open(target, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {target} ({os.path.getsize(target)} bytes)")


if __name__ == "__main__":
    main()
