#!/usr/bin/env python3
"""Loads a seed-conv checkpoint written by cnn-tui with safetensors.numpy, recomputes the
logits of a few test images in plain numpy from the documented layout, and checks they match
cnn-tui's own logits to 1e-4; then the same for a model with batch normalisation (Keras'
inference formula from the saved running statistics, after a conv without bias and after a
dense layer).

Layout: images are [n, 28, 28, 1] (channels last) scaled to [0, 1]; conv kernels are
[kh, kw, in, out]; dense weights are [in, out]; flatten is channels-last (C order).

usage: check_logits.py PATH/TO/cnn-tui
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N = 16


def test_images(n):
    with gzip.open(os.path.join(ROOT, "assets", "t10k-images-idx3-ubyte.gz")) as f:
        data = f.read()
    assert int.from_bytes(data[:4], "big") == 0x803
    pixels = np.frombuffer(data, dtype=np.uint8, offset=16)[: n * 784]
    return pixels.reshape(n, 28, 28, 1).astype(np.float64) / 255.0


def conv2d_valid(x, w, b):
    kh, kw, _, out = w.shape
    n, h, wd, _ = x.shape
    oh, ow = h - kh + 1, wd - kw + 1
    y = np.zeros((n, oh, ow, out))
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("nhwc,cf->nhwf", x[:, i : i + oh, j : j + ow, :], w[i, j])
    return y + b


def maxpool2(x):
    n, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, : h2 * 2, : w2 * 2, :].reshape(n, h2, 2, w2, 2, c).max(axis=(2, 4))


BN_CONFIG = """
name = "bn-check"
[model]
layers = [
  { type = "conv2d", filters = 8, kernel_size = 3, use_bias = false },
  { type = "batch_norm", activation = "relu" },
  { type = "maxpool2d", pool_size = 2 },
  { type = "flatten" },
  { type = "dense", units = 32 },
  { type = "batch_norm", momentum = 0.9 },
  { type = "relu" },
  { type = "dense", units = 10 },
]
[optimizer]
type = "adam"
lr = 0.001
[training]
epochs = 1
batch_size = 64
seed = 7
"""


def batch_norm(x, w, name, epsilon=1e-3):
    f = lambda k: w[f"{name}.{k}"].astype(np.float64)
    return (x - f("moving_mean")) / np.sqrt(f("moving_variance") + epsilon) * f("gamma") + f("beta")


def train_and_evaluate(binary, tmp, config):
    """Trains one epoch into tmp/run; the last checkpoint's tensors and cnn-tui's logits."""
    subprocess.run(
        [binary, "train", "--headless", "--config", config, "--epochs", "1", "--run-dir", "run"],
        cwd=tmp, check=True, stdout=subprocess.DEVNULL,
    )
    last = open(os.path.join(tmp, "run", "checkpoints", "last")).read().strip()
    ckpt = os.path.join(tmp, "run", "checkpoints", last)
    out = subprocess.run(
        [binary, "evaluate", "--weights", ckpt, "--json", "--logits", str(N)],
        cwd=tmp, check=True, capture_output=True, text=True,
    )
    return last, load_file(ckpt), np.array(json.loads(out.stdout)["logits"])


def check_batch_norm(binary):
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "bn.toml")
        with open(config, "w") as f:
            f.write(BN_CONFIG)
        last, w, theirs = train_and_evaluate(binary, tmp, config)
    assert "conv1.bias" not in w, sorted(w)
    for k in ["gamma", "beta", "moving_mean", "moving_variance"]:
        assert w[f"bn1.{k}"].shape == (8,) and w[f"bn2.{k}"].shape == (32,), k
    # The running statistics moved away from their initial 0 and 1.
    assert np.abs(w["bn1.moving_mean"]).max() > 1e-3 and np.abs(w["bn2.moving_variance"] - 1).max() > 1e-3
    x = test_images(N)
    f = lambda k: w[k].astype(np.float64)
    h = conv2d_valid(x, f("conv1.weight"), 0.0)
    h = np.maximum(batch_norm(h, w, "bn1"), 0.0)
    h = maxpool2(h).reshape(N, -1)
    h = np.maximum(batch_norm(h @ f("dense1.weight") + f("dense1.bias"), w, "bn2"), 0.0)
    ours = h @ f("dense2.weight") + f("dense2.bias")
    diff = np.abs(ours - theirs).max()
    print(f"batch_norm model: {len(w)} tensors in {last}; max |numpy - cnn-tui| over {N}x10 logits = {diff:.2e}")
    assert diff < 1e-4, diff


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(ROOT, "configs", "seed-conv.toml")
        subprocess.run(
            [binary, "train", "--headless", "--config", config, "--epochs", "1", "--run-dir", "run"],
            cwd=tmp, check=True, stdout=subprocess.DEVNULL,
        )
        last = open(os.path.join(tmp, "run", "checkpoints", "last")).read().strip()
        ckpt = os.path.join(tmp, "run", "checkpoints", last)
        w = load_file(ckpt)
        names = sorted(w)
        expected = {"conv1.weight", "conv1.bias", "dense1.weight", "dense1.bias",
                    "optim.conv1.weight.momentum", "optim.dense1.bias.momentum"}
        assert expected <= set(names), names
        assert w["conv1.weight"].shape == (3, 3, 1, 16) and w["dense1.weight"].shape == (2704, 10)
        out = subprocess.run(
            [binary, "evaluate", "--weights", ckpt, "--json", "--logits", str(N)],
            cwd=tmp, check=True, capture_output=True, text=True,
        )
        theirs = np.array(json.loads(out.stdout)["logits"])

    x = test_images(N)
    f = lambda k: w[k].astype(np.float64)
    h = np.maximum(conv2d_valid(x, f("conv1.weight"), f("conv1.bias")), 0.0)
    h = maxpool2(h).reshape(N, -1)
    ours = h @ f("dense1.weight") + f("dense1.bias")
    diff = np.abs(ours - theirs).max()
    print(f"{len(names)} tensors in {last}; max |numpy - cnn-tui| over {N}x10 logits = {diff:.2e}")
    assert diff < 1e-4, diff
    print("predictions:", ours.argmax(axis=1).tolist())
    check_batch_norm(binary)


if __name__ == "__main__":
    main()
