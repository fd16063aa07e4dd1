#!/usr/bin/env python3
"""The same GAN as gan-wgpu, trained with PyTorch on the CPU: the speed
reference of `bench/compare.sh`. Not used by the tests or CI.

Model, loss and optimiser as gan-wgpu (and the tutorial): generator
latent-128-256-512-1024-784 with BatchNorm1d and ReLU, tanh output;
discriminator 784-512-256-1 with LeakyReLU(0.2), sigmoid output; BCELoss;
Adam(lr 2e-4, betas (0.5, 0.999)) on each; batch 128; the same step order
(D on [G(z); x], then G through the updated D, G's forward once a step).

    python3 bench/torch_reference.py --steps 200     # steps/s after a warm-up
    python3 bench/torch_reference.py --epochs 1      # whole epochs (468 steps)
"""
import argparse
import gzip
import os
import struct
import sys
import time

import numpy as np
import torch
from torch import nn


def read_idx_images(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    _, _, _, ndims = struct.unpack(">BBBB", data[:4])
    dims = struct.unpack(">" + "I" * ndims, data[4 : 4 + 4 * ndims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndims).reshape(dims)


def models(latent=100, dim=784):
    g = nn.Sequential(
        nn.Linear(latent, 128), nn.ReLU(),
        nn.Linear(128, 256), nn.BatchNorm1d(256), nn.ReLU(),
        nn.Linear(256, 512), nn.BatchNorm1d(512), nn.ReLU(),
        nn.Linear(512, 1024), nn.BatchNorm1d(1024), nn.ReLU(),
        nn.Linear(1024, dim), nn.Tanh())
    d = nn.Sequential(
        nn.Linear(dim, 512), nn.LeakyReLU(0.2),
        nn.Linear(512, 256), nn.LeakyReLU(0.2),
        nn.Linear(256, 1), nn.Sigmoid())
    return g, d


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=0, help="timed steps after a 20-step warm-up")
    ap.add_argument("--epochs", type=int, default=0, help="whole epochs to train (468 steps each)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "assets", "mnist"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    images = read_idx_images(os.path.join(a.data, "train", "train-images-idx3-ubyte.gz"))
    x_all = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 127.5 - 1.0)
    g, d = models()
    bce = nn.BCELoss()
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    b = a.batch_size
    ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)
    steps_per_epoch = len(x_all) // b

    def step(real):
        z = torch.randn(b, 100)
        fake = g(z)
        loss_d = bce(d(fake.detach()), zeros) + bce(d(real), ones)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = bce(d(fake), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return loss_d, loss_g

    if a.steps:
        perm = torch.randperm(len(x_all))
        for s in range(20):
            step(x_all[perm[s * b:(s + 1) * b]])
        t = time.perf_counter()
        for s in range(a.steps):
            i = s % steps_per_epoch
            step(x_all[perm[i * b:(i + 1) * b]])
        secs = time.perf_counter() - t
        print(f"torch: {a.steps / secs:.2f} steps/s ({1e3 * secs / a.steps:.1f} ms a step, batch {b}, {a.threads} threads)")
    for e in range(a.epochs):
        t = time.perf_counter()
        perm = torch.randperm(len(x_all))
        for s in range(steps_per_epoch):
            loss_d, loss_g = step(x_all[perm[s * b:(s + 1) * b]])
        print(f"torch: epoch {e}: {time.perf_counter() - t:.2f} s, loss_d {loss_d.item():.4f}, loss_g {loss_g.item():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
