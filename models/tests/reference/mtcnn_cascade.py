#!/usr/bin/env python3
"""Independent NumPy reference for the MTCNN detection cascade (facenet-pytorch 2.6.0,
`facenet_pytorch/models/utils/detect_face.py: detect_face`), for models/tests/suite/mtcnn_cascade.rs.

Rerun (from the repository root; writes models/tests/reference/mtcnn_cascade.json):

    python3 -m pip install --user numpy pillow
    cargo run -p tandem-models --bin fetch-models      # or let `cargo test` fetch the weights
    python3 models/tests/reference/mtcnn_cascade.py [TANDEM_HOME]

The weights reader and the three forward passes are those of mtcnn.py (beside this file, no
torch); this script adds a NumPy port of upstream's cascade, in float64, with upstream's
defaults (MTCNN(): min_face_size 20, thresholds [0.6, 0.7, 0.7], factor 0.709):

- scale pyramid: m = 12 / minsize, scales m * factor^k while min(h, w) * m * factor^k >= 12;
- `imresample` = torch `interpolate(mode="area")` = adaptive average pooling: output pixel i of
  a side in -> out averages source pixels floor(i * in / out) .. ceil((i + 1) * in / out) - 1
  (unweighted, rows and columns independently), here as two averaging matrices;
- P-Net on each scale, `generateBoundingBox` (stride 2, cell 12, probability >= 0.6, boxes
  floor((2 * (x, y) + 1) / scale), floor((2 * (x, y) + 12) / scale)), NMS 0.5 per scale, NMS 0.7
  over all scales, regression with the box's width/height x2 - x1 (no +1), `rerec` (square);
- `pad` (truncate to integers, clamp x, y >= 1 and ex <= w, ey <= h), crop rows y-1..ey and
  columns x-1..ex (no zero padding: upstream crops the part inside the image), area-resize to
  24x24, R-Net, probability > 0.7, NMS 0.7, `bbreg` (width x2 - x1 + 1), `rerec`;
- the same with 48x48 crops and O-Net (> 0.7); landmarks x = w * l + x1 - 1, y = h * l + y1 - 1
  with the box before `bbreg`; `bbreg`; then upstream's NumPy NMS 0.7 with the 'Min' overlap
  (areas with +1, intersection over the smaller area, kept where <= 0.7).
- NMS otherwise as torchvision's `nms`: by decreasing score, drop the boxes whose IoU (areas
  without +1) with a kept box is > the threshold.

One deviation, for a case upstream mishandles: upstream drops a crop that lies entirely outside
the image but keeps its box, which misaligns boxes and network outputs; here such a box is
dropped with its crop (the Rust port does the same). The faces come out in detect_face's order
(decreasing probability); `MTCNN.detect`'s `select_largest` reordering is not applied.
"""

import hashlib
import json
import math
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mtcnn as nets  # noqa: E402

MIN_SIZE = 20
THRESHOLDS = [0.6, 0.7, 0.7]
FACTOR = 0.709
PHOTOS = ["astronaut", "chelsea", "coffee", "camera", "motorcycle_left"]


def area_matrix(n_in, n_out):
    """[n_out, n_in]: row i averages source pixels floor(i*in/out) .. ceil((i+1)*in/out)-1."""
    a = np.zeros((n_out, n_in))
    for i in range(n_out):
        start = (i * n_in) // n_out
        end = -(-((i + 1) * n_in) // n_out)
        a[i, start:end] = 1.0 / (end - start)
    return a


def imresample(img, size):
    """img [3, h, w] -> [3, size_h, size_w], torch interpolate(mode='area')."""
    _, h, w = img.shape
    ah, aw = area_matrix(h, size[0]), area_matrix(w, size[1])
    return np.einsum("ih,chw,jw->cij", ah, img, aw, optimize=True)


def normalize(x):
    return (x - 127.5) * 0.0078125


def nms(boxes, scores, threshold):
    """torchvision.ops.nms: indices kept, by decreasing score."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(scores), bool)
    keep = []
    for a, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in order[a + 1 :]:
            if suppressed[j]:
                continue
            w = max(0.0, min(x2[i], x2[j]) - max(x1[i], x1[j]))
            h = max(0.0, min(y2[i], y2[j]) - max(y1[i], y1[j]))
            inter = w * h
            if inter / (area[i] + area[j] - inter) > threshold:
                suppressed[j] = True
    return np.array(keep, dtype=np.int64)


def nms_min(boxes, scores, threshold):
    """Upstream's nms_numpy(..., 'Min'), by decreasing score."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        order = []
        for j in rest:
            w = max(0.0, min(x2[i], x2[j]) - max(x1[i], x1[j]) + 1)
            h = max(0.0, min(y2[i], y2[j]) - max(y1[i], y1[j]) + 1)
            if w * h / min(area[i], area[j]) <= threshold:
                order.append(j)
    return np.array(keep, dtype=np.int64)


def generate_bounding_box(reg, probs, scale, thresh):
    """reg [4, h, w], probs [h, w] -> [k, 9]: x1, y1, x2, y2, score, reg0..3."""
    ys, xs = np.nonzero(probs >= thresh)  # row-major, as torch's nonzero
    bb = np.stack([xs, ys], axis=1).astype(np.float64)
    q1 = np.floor((2 * bb + 1) / scale)
    q2 = np.floor((2 * bb + 12) / scale)
    return np.concatenate([q1, q2, probs[ys, xs][:, None], reg[:, ys, xs].T], axis=1)


def rerec(b):
    b = b.copy()
    h = b[:, 3] - b[:, 1]
    w = b[:, 2] - b[:, 0]
    l = np.maximum(w, h)
    b[:, 0] = b[:, 0] + w * 0.5 - l * 0.5
    b[:, 1] = b[:, 1] + h * 0.5 - l * 0.5
    b[:, 2] = b[:, 0] + l
    b[:, 3] = b[:, 1] + l
    return b


def bbreg(b, reg):
    b = b.copy()
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    b[:, 0] += reg[:, 0] * w
    b[:, 1] += reg[:, 1] * h
    b[:, 2] += reg[:, 2] * w
    b[:, 3] += reg[:, 3] * h
    return b


def crops(img, boxes, size):
    """pad + crop + area resize; returns (normalised crops [k, 3, size, size], kept indices)."""
    _, h, w = img.shape
    out, kept = [], []
    for k, box in enumerate(boxes):
        x, y, ex, ey = (int(math.trunc(v)) for v in box[:4])
        x, y = max(x, 1), max(y, 1)
        ex, ey = min(ex, w), min(ey, h)
        if ey > y - 1 and ex > x - 1:
            out.append(normalize(imresample(img[:, y - 1 : ey, x - 1 : ex], (size, size))))
            kept.append(k)
    return np.array(out).reshape(-1, 3, size, size), np.array(kept, dtype=np.int64)


def detect(img, p, r, o):
    """img [3, h, w] float64 RGB 0..255 -> (boxes [k, 5], points [k, 5, 2])."""
    _, h, w = img.shape
    m = 12.0 / MIN_SIZE
    minl = min(h, w) * m
    scales, scale = [], m
    while minl >= 12:
        scales.append(scale)
        scale *= FACTOR
        minl *= FACTOR

    stages = {"scales": len(scales), "pnet": 0, "pnet_nms": 0, "rnet": 0, "onet": 0}
    picked = []
    for scale in scales:
        data = normalize(imresample(img, (int(h * scale + 1), int(w * scale + 1))))
        out = nets.pnet(p, data[None])
        boxes = generate_bounding_box(out["boxes"][0], out["probs"][0, 1], scale, THRESHOLDS[0])
        picked.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
    boxes = np.concatenate(picked, axis=0)
    stages["pnet"] = len(boxes)
    boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
    stages["pnet_nms"] = len(boxes)
    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    boxes = np.stack(
        [
            boxes[:, 0] + boxes[:, 5] * regw,
            boxes[:, 1] + boxes[:, 6] * regh,
            boxes[:, 2] + boxes[:, 7] * regw,
            boxes[:, 3] + boxes[:, 8] * regh,
            boxes[:, 4],
        ],
        axis=1,
    )
    boxes = rerec(boxes)

    points = np.zeros((0, 5, 2))
    if len(boxes):
        data, kept = crops(img, boxes, 24)
        boxes = boxes[kept]
        out = nets.rnet(r, data)
        score = out["probs"][:, 1]
        ipass = score > THRESHOLDS[1]
        boxes = np.concatenate([boxes[ipass, :4], score[ipass, None]], axis=1)
        mv = out["boxes"][ipass]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = rerec(bbreg(boxes[pick], mv[pick]))
    stages["rnet"] = len(boxes)

    if len(boxes):
        data, kept = crops(img, boxes, 48)
        boxes = boxes[kept]
        out = nets.onet(o, data)
        score = out["probs"][:, 1]
        ipass = score > THRESHOLDS[2]
        lm = out["landmarks"][ipass]
        boxes = np.concatenate([boxes[ipass, :4], score[ipass, None]], axis=1)
        mv = out["boxes"][ipass]
        w_i = boxes[:, 2] - boxes[:, 0] + 1
        h_i = boxes[:, 3] - boxes[:, 1] + 1
        px = w_i[:, None] * lm[:, :5] + boxes[:, 0:1] - 1
        py = h_i[:, None] * lm[:, 5:] + boxes[:, 1:2] - 1
        points = np.stack([px, py], axis=2)
        boxes = bbreg(boxes, mv)
        stages["onet"] = len(boxes)
        pick = nms_min(boxes[:, :4], boxes[:, 4], 0.7)
        boxes, points = boxes[pick], points[pick]
    stages["faces"] = len(boxes)
    return boxes, points, stages


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    home = nets.tandem_home()
    data = os.path.join(home, "facenet-pytorch-2.6.0", "facenet_pytorch", "data")
    params = {n: nets.load_legacy_pt(os.path.join(data, f"{n}.pt")) for n in ["pnet", "rnet", "onet"]}
    out = {
        "weights_sha256": {n: sha256(os.path.join(data, f"{n}.pt")) for n in params},
        "photos": {},
    }
    for name in PHOTOS:
        path = os.path.join(home, "scikit-image-0.25.2", "skimage", "data", f"{name}.png")
        image = np.asarray(Image.open(path).convert("RGB")).astype(np.float64)
        img = image.transpose(2, 0, 1)
        boxes, points, stages = detect(img, params["pnet"], params["rnet"], params["onet"])
        faces = [
            {
                "bbox": [float(f"{v:.9g}") for v in b[:4]],
                "probability": float(f"{b[4]:.9g}"),
                "landmarks": [[float(f"{v:.9g}") for v in pt] for pt in lm],
            }
            for b, lm in zip(boxes, points)
        ]
        out["photos"][name] = {
            "photo_sha256": sha256(path),
            "size": [img.shape[2], img.shape[1]],
            "stages": stages,
            "faces": faces,
        }
        print(f"{name} {img.shape[2]}x{img.shape[1]}: {stages}")
        for f in faces:
            print(f"  {f['bbox']} p={f['probability']:.6f}")
    target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mtcnn_cascade.json")
    with open(target, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {target} ({os.path.getsize(target)} bytes)")


if __name__ == "__main__":
    main()
