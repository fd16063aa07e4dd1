#!/usr/bin/env python3
"""A second yardstick for `gan-wgpu eval`: FID in the features of a small
convolutional classifier trained here with PyTorch, to tell whether a
ranking of two generators comes from the models or from the engine's
classifier (a 784-512-256-10 MLP, whose features are not translation
invariant). Not used by the tests or CI.

The classifier: Conv2d(1, 32, 3, pad 1), ReLU, MaxPool 2; Conv2d(32, 64, 3,
pad 1), ReLU, MaxPool 2; Linear(3136, 128), ReLU (the features); Linear(128,
10). Adam 1e-3, batch 128, 2 epochs on the MNIST training set, seed 0
(about 99% on the test set). FID is taken between Gaussians fitted to the
128 features of the test set and of each sample file, as `eval` does with
its own features:

    gan-wgpu sample --checkpoint result/checkpoints/generator_14.safetensors \\
        --count 10000 --seed 0 --idx /tmp/g14.idx
    /tmp/torchenv/bin/python bench/torch_cnn_fid.py /tmp/g14.idx [more.idx ...]

It prints the classifier's test accuracy, the floor (10,000 training images)
and each file's FID.
"""
import argparse
import glob
import gzip
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def read_idx(path):
    raw = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def one(folder, pattern):
    found = sorted(glob.glob(os.path.join(folder, pattern)))
    if not found:
        raise SystemExit(f"no {pattern} in {folder}")
    return found[0]


def as_input(pixels):
    # [n, 28, 28] u8 -> [n, 1, 28, 28] in [-1, 1], as the engine reads images.
    return torch.tensor(pixels, dtype=torch.float32).unsqueeze(1) / 127.5 - 1


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.features_layer = nn.Linear(64 * 7 * 7, 128)
        self.out = nn.Linear(128, 10)

    def features(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.features_layer(x.flatten(1)))

    def forward(self, x):
        return self.out(self.features(x))


def fid(mean_a, cov_a, feats):
    # ||mu_a - mu_b||^2 + tr(A + B - 2 (A^1/2 B A^1/2)^1/2), A symmetric PSD.
    mean_b, cov_b = feats.mean(0), np.cov(feats, rowvar=False)
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    return float(
        ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(np.clip(middle, 0, None)).sum()
    )


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("samples", nargs="+", help="IDX u8 files of 28x28 images (sample --idx)")
    p.add_argument("--data", default=os.path.join(here, "..", "assets", "mnist"), help="MNIST in the seed's layout")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    train = read_idx(one(os.path.join(a.data, "train"), "train-images*"))
    labels = torch.tensor(read_idx(one(os.path.join(a.data, "train"), "train-labels*")), dtype=torch.long)
    test = read_idx(one(os.path.join(a.data, "test"), "t10k-images*"))
    test_labels = read_idx(one(os.path.join(a.data, "test"), "t10k-labels*"))

    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = as_input(train)
    for _ in range(2):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            j = order[i : i + 128]
            opt.zero_grad()
            F.cross_entropy(model(x[j]), labels[j]).backward()
            opt.step()
    model.eval()

    def run(pixels, fn):
        with torch.no_grad():
            return torch.cat([fn(as_input(pixels[i : i + 1000])) for i in range(0, len(pixels), 1000)])

    accuracy = (run(test, model).argmax(1).numpy() == test_labels).mean()
    print(f"classifier: test accuracy {100 * accuracy:.2f}%")
    ref = run(test, model.features).numpy().astype(np.float64)
    mean, cov = ref.mean(0), np.cov(ref, rowvar=False)
    floor = fid(mean, cov, run(train[:10000], model.features).numpy().astype(np.float64))
    print(f"{'real training images (the floor)':<40} FID {floor:8.2f}")
    for path in a.samples:
        feats = run(read_idx(path), model.features).numpy().astype(np.float64)
        print(f"{path:<40} FID {fid(mean, cov, feats):8.2f}")


if __name__ == "__main__":
    main()
