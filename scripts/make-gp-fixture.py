#!/usr/bin/env python3
"""Writes tests/fixtures/wgan_gp_dense.safetensors: WGAN-GP's critic loss and
its weight gradients from PyTorch's autograd (torch.autograd.grad with
create_graph=True, as PyTorch-GAN's wgan_gp.py computes the penalty), for a
dense critic of odd widths. tests/penalty_gpu.rs checks the engine against
it; CI needs no PyTorch.

The critic: model.0 Linear(49, 23) LeakyReLU(0.2), model.2 Linear(23, 11)
LeakyReLU(0.2), model.4 Linear(11, 1), PyTorch's default init (seed 0).
Six real and six fake rows uniform in [-1, 1). eps is the engine's draw:
Philox4x32-10 (shaders/philox.wgsl) with key = the seed, counter = (r / 4,
steps done, stream 48, 0), word r % 4, eps = (word >> 8) * 2^-24; written
with the rest so a mismatch shows where.

Stored: the critic's parameters (state_dict names), real [6, 49], fake
[6, 49], eps [6], x_hat [6, 49], penalty [1], mean_norm [1], critic_loss
[1] (E[D(fake)] - E[D(real)] + penalty), and grad.NAME for each parameter
(of critic_loss). Metadata: seed, steps_done, gp_weight, torch's version.

Usage: python3 scripts/make-gp-fixture.py  (needs torch and safetensors)
"""
import pathlib

import torch
from safetensors.torch import save_file

SEED, STEPS_DONE, STREAM, GP_WEIGHT = 0x5EED, 3, 48, 10.0
WIDTHS, ROWS = [49, 23, 11, 1], 6
M = 0xFFFFFFFF


def philox4x32_10(counter, key):
    c, k = list(counter), list(key)
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 & M, (p0 >> 32) ^ c[3] ^ k[1], p0 & M]
        k = [(k[0] + 0x9E3779B9) & M, (k[1] + 0xBB67AE85) & M]
    return c


def engine_eps(rows):
    key = [SEED & M, SEED >> 32]
    words = [philox4x32_10([r // 4, STEPS_DONE, STREAM, 0], key)[r % 4] for r in range(rows)]
    return torch.tensor([(w >> 8) * 2.0**-24 for w in words], dtype=torch.float32)


def main():
    torch.manual_seed(0)
    layers = []
    for i, (inp, out) in enumerate(zip(WIDTHS, WIDTHS[1:])):
        layers.append(torch.nn.Linear(inp, out))
        if i < len(WIDTHS) - 2:
            layers.append(torch.nn.LeakyReLU(0.2))
    critic = torch.nn.Sequential(*layers)
    real = torch.rand(ROWS, WIDTHS[0]) * 2 - 1
    fake = torch.rand(ROWS, WIDTHS[0]) * 2 - 1
    eps = engine_eps(ROWS)
    x_hat = (eps[:, None] * real + (1 - eps[:, None]) * fake).requires_grad_(True)
    scores = critic(x_hat)
    (g,) = torch.autograd.grad(scores, x_hat, torch.ones_like(scores), create_graph=True)
    norms = g.reshape(ROWS, -1).norm(2, dim=1)
    penalty = GP_WEIGHT * ((norms - 1) ** 2).mean()
    loss = critic(fake).mean() - critic(real).mean() + penalty
    names = [n for n, _ in critic.named_parameters()]
    grads = torch.autograd.grad(loss, list(critic.parameters()))
    tensors = {("model." + n): p.detach().clone() for n, p in critic.named_parameters()}
    tensors.update(real=real, fake=fake, eps=eps, x_hat=x_hat.detach())
    tensors.update(penalty=penalty.detach().reshape(1), mean_norm=norms.mean().detach().reshape(1))
    tensors["critic_loss"] = loss.detach().reshape(1)
    tensors.update({("grad.model." + n): gr for n, gr in zip(names, grads)})
    out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "wgan_gp_dense.safetensors"
    out.parent.mkdir(exist_ok=True)
    meta = dict(seed=str(SEED), steps_done=str(STEPS_DONE), gp_weight=str(GP_WEIGHT), torch=torch.__version__)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out), metadata=meta)
    print(f"wrote {out}: penalty {penalty.item():.6f}, critic loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
