#!/usr/bin/env python3
"""The conditional GAN of `--model cgan`, trained with PyTorch on the CPU:
the quality reference that tells the engine's cgan results from the
model's. Not used by the tests or CI.

Model, loss and optimiser as `gan-wgpu train --model cgan`: the tutorial's
generator (latent+10 -> 128 -> 256 -> 512 -> 1024 -> 784, BatchNorm1d,
ReLU, tanh) and discriminator (784+10 -> 512 -> 256 -> 1, LeakyReLU(0.2),
sigmoid), each with an Embedding(10, 10) joined after its input; BCELoss;
Adam(2e-4, (0.5, 0.999)); batch 128, last partial batch dropped; fake
labels uniform; D on real and fake, then G through the updated D with the
same z. `--dropout P` adds Dropout(P) after each of D's hidden LeakyReLUs
and `--leaky-generator` gives G LeakyReLU(0.2): variants measured beside
the issue's networks in docs/quality.md.

The generator is written after the epochs in `--save` as safetensors with
the metadata of `--template` (any generator checkpoint `train --model cgan`
wrote: the same tensors), its hidden activations set to the ones trained
here (ReLU, or LeakyReLU with `--leaky-generator`), so `gan-wgpu eval`
scores it. `train --model cgan` itself is `--dropout 0.5 --leaky-generator`:

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy safetensors
    gan-wgpu train --model cgan --epochs 1 --limit 256 --out /tmp/template
    /tmp/torchenv/bin/python bench/torch_cgan.py --seed 0 --epochs 15 \\
        --template /tmp/template/checkpoints/generator_0.safetensors --out /tmp/pt_cgan
    gan-wgpu eval --checkpoint /tmp/pt_cgan_g14.safetensors
"""
import argparse
import json
import os
import time

import numpy as np
import torch
from torch import nn

from torch_common import read_idx, save_generator, template_metadata



class Generator(nn.Module):
    def __init__(self, leaky, latent=100, dim=784, classes=10):
        super().__init__()
        act = (lambda: nn.LeakyReLU(0.2)) if leaky else nn.ReLU
        self.label_emb = nn.Embedding(classes, classes)
        self.model = nn.Sequential(
            nn.Linear(latent + classes, 128), act(),
            nn.Linear(128, 256), nn.BatchNorm1d(256), act(),
            nn.Linear(256, 512), nn.BatchNorm1d(512), act(),
            nn.Linear(512, 1024), nn.BatchNorm1d(1024), act(),
            nn.Linear(1024, dim), nn.Tanh())

    def forward(self, z, y):
        return self.model(torch.cat([z, self.label_emb(y)], 1))


class Discriminator(nn.Module):
    def __init__(self, dropout, dim=784, classes=10):
        super().__init__()
        drop = (lambda: [nn.Dropout(dropout)]) if dropout > 0 else (lambda: [])
        self.label_emb = nn.Embedding(classes, classes)
        self.model = nn.Sequential(
            nn.Linear(dim + classes, 512), nn.LeakyReLU(0.2), *drop(),
            nn.Linear(512, 256), nn.LeakyReLU(0.2), *drop(),
            nn.Linear(256, 1), nn.Sigmoid())

    def forward(self, x, y):
        return self.model(torch.cat([x, self.label_emb(y)], 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--save", default="0,1,4,9,14", help="epochs after which the generator is written")
    ap.add_argument("--dropout", type=float, default=0.0, help="Dropout(P) after D's hidden layers (0: the issue's D)")
    ap.add_argument("--leaky-generator", action="store_true", help="LeakyReLU(0.2) in G instead of ReLU")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images only (a smoke test)")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "assets", "mnist"))
    ap.add_argument("--template", required=True, help="a cgan generator checkpoint whose metadata is copied")
    ap.add_argument("--out", required=True, help="prefix: PREFIX_g{epoch}.safetensors")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    images = read_idx(os.path.join(a.data, "train", "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(a.data, "train", "train-labels-idx1-ubyte.gz"))
    if a.limit:
        images, labels = images[: a.limit], labels[: a.limit]
    x_all = torch.from_numpy((images.reshape(len(images), -1).astype(np.float32) - 127.5) / 127.5)
    y_all = torch.from_numpy(labels.astype(np.int64))
    metadata = template_metadata(a.template)
    # The file must record the activation this G was trained with, whatever
    # the template's (`eval` computes what the architecture says).
    arch = json.loads(metadata["architecture"])
    hidden = "leaky_relu_0.2" if a.leaky_generator else "relu"
    for layer in arch["layers"][:-1]:
        layer["activation"] = hidden
    metadata["architecture"] = json.dumps(arch, separators=(",", ":"))
    save = {int(e) for e in a.save.split(",")}
    g, d = Generator(a.leaky_generator), Discriminator(a.dropout)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    batch, steps = 128, 0
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    for epoch in range(a.epochs):
        start = time.time()
        order = torch.randperm(len(x_all))
        for i in range(len(x_all) // batch):
            idx = order[i * batch : (i + 1) * batch]
            x, y = x_all[idx], y_all[idx]
            z, y_fake = torch.randn(batch, 100), torch.randint(0, 10, (batch,))
            fake = g(z, y_fake)
            loss_d = bce(d(x, y), ones) + bce(d(fake.detach(), y_fake), zeros)
            opt_d.zero_grad(); loss_d.backward(); opt_d.step()
            loss_g = bce(d(fake, y_fake), ones)
            opt_g.zero_grad(); loss_g.backward(); opt_g.step()
            steps += 1
        print(f"epoch {epoch}: {time.time() - start:.1f} s, loss_d {loss_d.item():.4f}, loss_g {loss_g.item():.4f}", flush=True)
        if epoch in save:
            save_generator(g, f"{a.out}_g{epoch}.safetensors", metadata, epoch, steps)


if __name__ == "__main__":
    main()
