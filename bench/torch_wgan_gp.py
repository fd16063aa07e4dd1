#!/usr/bin/env python3
"""The engine's WGAN-GP runs, trained with PyTorch on the CPU: the quality
and speed reference of `train --loss wgan-gp` (docs/quality.md). Not used
by the tests or CI.

gan: the tutorial's generator (latent-128-256-512-1024-784, BatchNorm1d,
ReLU, tanh) and its discriminator as a critic (784-512-256-1, LeakyReLU(0.2),
no sigmoid). dcgan: examples/dcgan's networks sized for 28x28 (G 1 -> 7 ->
14 -> 28, D 28 -> 14 -> 7 -> 1) with D's batch norm dropped.
The loss as PyTorch-GAN's wgan_gp.py: the critic minimises
E[D(G(z))] - E[D(x)] + lambda E[(||grad_x D(x_hat)||_2 - 1)^2] with x_hat =
eps x + (1 - eps) G(z), eps ~ U[0, 1) per sample, the gradient by
torch.autograd.grad(create_graph=True); G minimises -E[D(G(z))]. Every
batch is a critic step, G steps every n-th batch on the same G(z) (as the
engine counts `--n-critic`). Adam (2e-4, 0.5, 0.999) for both, batch 128.

    python3 bench/torch_wgan_gp.py --template result/checkpoints/generator_0.safetensors \\
        --out /tmp/torch_wgp --epochs 15 --save 0,1,4,9,14
then `gan-wgpu eval --generator /tmp/torch_wgp_g14.safetensors` scores it as
the engine's own checkpoints.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
from torch_common import add_run_args, save_generator, start_run, template_metadata  # noqa: E402


def mlp_pair():
    g = nn.Sequential(
        nn.Linear(100, 128), nn.ReLU(),
        nn.Linear(128, 256), nn.BatchNorm1d(256), nn.ReLU(),
        nn.Linear(256, 512), nn.BatchNorm1d(512), nn.ReLU(),
        nn.Linear(512, 1024), nn.BatchNorm1d(1024), nn.ReLU(),
        nn.Linear(1024, 784), nn.Tanh())
    d = nn.Sequential(
        nn.Linear(784, 512), nn.LeakyReLU(0.2),
        nn.Linear(512, 256), nn.LeakyReLU(0.2),
        nn.Linear(256, 1))
    return nn.ModuleDict({"model": g}), nn.ModuleDict({"model": d}), 784


def dcgan_pair(w=64):
    g = nn.Sequential(
        nn.ConvTranspose2d(100, 2 * w, 7, 1, 0, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(True),
        nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),
        nn.ConvTranspose2d(w, 1, 4, 2, 1, bias=False), nn.Tanh())
    d = nn.Sequential(
        nn.Conv2d(1, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(2 * w, 1, 7, 1, 0, bias=False))
    for m in list(g.modules()) + list(d.modules()):
        if "Conv" in type(m).__name__:
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif "BatchNorm" in type(m).__name__:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return nn.ModuleDict({"main": g}), nn.ModuleDict({"main": d}), (1, 28, 28)


def run(net, x):
    return next(iter(net.values()))(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["gan", "dcgan"], default="gan")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--save", default="0,1,4,9,14", help="epochs after which the generator is written")
    ap.add_argument("--n-critic", type=int, default=5)
    ap.add_argument("--gp-weight", type=float, default=10.0)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--beta1", type=float, default=0.5)
    ap.add_argument("--beta2", type=float, default=0.999)
    add_run_args(ap, threads=2)
    a = ap.parse_args()
    images = start_run(a)
    g, d, shape = mlp_pair() if a.model == "gan" else dcgan_pair()
    x_all = torch.from_numpy((images.astype(np.float32) - 127.5) / 127.5)
    x_all = x_all.reshape(len(x_all), -1) if a.model == "gan" else x_all.unsqueeze(1)
    metadata = template_metadata(a.template)
    save = {int(e) for e in a.save.split(",")}
    opt_g = torch.optim.Adam(g.parameters(), a.lr, betas=(a.beta1, a.beta2))
    opt_d = torch.optim.Adam(d.parameters(), a.lr, betas=(a.beta1, a.beta2))
    batch, steps = 128, 0
    for epoch in range(a.epochs):
        start = time.time()
        g.train()
        order = torch.randperm(len(x_all))
        for i in range(len(x_all) // batch):
            real = x_all[order[i * batch : (i + 1) * batch]]
            fake = run(g, torch.randn(batch, 100) if a.model == "gan" else torch.randn(batch, 100, 1, 1))
            eps = torch.rand(batch, *([1] * (real.dim() - 1)))
            x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
            score = run(d, x_hat)
            (grad,) = torch.autograd.grad(score, x_hat, torch.ones_like(score), create_graph=True)
            penalty = a.gp_weight * ((grad.reshape(batch, -1).norm(2, dim=1) - 1) ** 2).mean()
            loss_d = run(d, fake.detach()).mean() - run(d, real).mean() + penalty
            opt_d.zero_grad(); loss_d.backward(); opt_d.step()
            steps += 1
            if steps % a.n_critic == 0:
                loss_g = -run(d, fake).mean()
                opt_g.zero_grad(); loss_g.backward(); opt_g.step()
        secs = time.time() - start
        print(f"epoch {epoch}: {secs:.1f} s, loss_d {loss_d.item():.4f}, loss_g {loss_g.item():.4f}", flush=True)
        if epoch in save:
            save_generator(g, f"{a.out}_g{epoch}.safetensors", metadata, epoch, steps)


if __name__ == "__main__":
    main()
