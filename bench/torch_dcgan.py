#!/usr/bin/env python3
"""`--model dcgan` trained with PyTorch on the CPU, as examples/dcgan trains
it: the quality reference that tells the engine's dcgan results from the
model's. Not used by the tests or CI.

Networks as docs/pytorch.md (width 64, 28x28, no biases), weights N(0, 0.02),
BatchNorm gamma N(1, 0.02); BCELoss; Adam(2e-4, (0.5, 0.999)); batch 128,
last partial batch dropped; D on the real batch and on the fake batch in
two passes (each with its own batch statistics), then G through the
updated D. After each epoch in `--save` the generator is written as
safetensors with the metadata of `--template` (a generator checkpoint
`train --model dcgan` wrote), so `gan-wgpu eval --checkpoint` scores it
with batch norm in eval mode; and 10,000 samples drawn in training mode
(batch statistics over batches of 128, as examples/dcgan draws its grids)
are written as IDX for `gan-wgpu eval --samples`:

    gan-wgpu train --model dcgan --epochs 1 --limit 256 --out /tmp/template
    /tmp/torchenv/bin/python bench/torch_dcgan.py --epochs 5 --threads 2 \\
        --template /tmp/template/checkpoints/generator_0.safetensors --out /tmp/pt_dcgan
    gan-wgpu eval --checkpoint /tmp/pt_dcgan_g4.safetensors
    gan-wgpu eval --samples /tmp/pt_dcgan_g4_train_mode.idx
"""
import argparse
import struct
import time

import numpy as np
import torch
from torch import nn

from torch_common import add_run_args, save_generator, start_run, template_metadata



class Generator(nn.Module):
    def __init__(self, latent=100, w=64):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(latent, 2 * w, 7, 1, 0, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(True),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),
            nn.ConvTranspose2d(w, 1, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
        return self.main(z.view(z.shape[0], -1, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, w=64):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * w, 1, 7, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, x):
        return self.main(x).view(-1)


def weights_init(m):  # examples/dcgan's
    if "Conv" in type(m).__name__:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif "BatchNorm" in type(m).__name__:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def train_mode_samples(g, path, count=10000, batch=128):
    g.train()
    with torch.no_grad():
        parts = [g(torch.randn(batch, 100)).reshape(batch, -1) for _ in range(count // batch + 1)]
    pixels = ((torch.cat(parts)[:count] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    with open(path, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, count, 28, 28))
        f.write(pixels.tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--save", default="0,1,2,3,4", help="epochs after which the generator is written")
    add_run_args(ap, threads=1)
    a = ap.parse_args()
    images = start_run(a)
    x_all = torch.from_numpy((images.astype(np.float32) - 127.5) / 127.5).unsqueeze(1)
    metadata = template_metadata(a.template)
    save = {int(e) for e in a.save.split(",")}
    g, d = Generator(), Discriminator()
    g.apply(weights_init)
    d.apply(weights_init)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    batch, steps = 128, 0
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    for epoch in range(a.epochs):
        start = time.time()
        g.train()
        order = torch.randperm(len(x_all))
        for i in range(len(x_all) // batch):
            x = x_all[order[i * batch : (i + 1) * batch]]
            z = torch.randn(batch, 100)
            fake = g(z)
            loss_d = bce(d(x), ones) + bce(d(fake.detach()), zeros)
            opt_d.zero_grad(); loss_d.backward(); opt_d.step()
            loss_g = bce(d(fake), ones)
            opt_g.zero_grad(); loss_g.backward(); opt_g.step()
            steps += 1
        print(f"epoch {epoch}: {time.time() - start:.1f} s, loss_d {loss_d.item():.4f}, loss_g {loss_g.item():.4f}", flush=True)
        if epoch in save:
            save_generator(g, f"{a.out}_g{epoch}.safetensors", metadata, epoch, steps)
            train_mode_samples(g, f"{a.out}_g{epoch}_train_mode.idx")


if __name__ == "__main__":
    main()
