#!/usr/bin/env python3
"""Writes tests/fixtures/wgan_gp_{dense,conv}.safetensors: WGAN-GP's critic
loss and its weight gradients from PyTorch's autograd (torch.autograd.grad
with create_graph=True, as PyTorch-GAN's wgan_gp.py computes the penalty),
for a dense and a convolutional critic of odd sizes. tests/penalty_gpu.rs
checks the engine against them; CI needs no PyTorch.

dense: model.0 Linear(49, 23) LeakyReLU(0.2), model.2 Linear(23, 11)
LeakyReLU(0.2), model.4 Linear(11, 1), PyTorch's default init (seed 0); six
real and six fake rows uniform in [-1, 1).
conv (tests/common's odd_conv_critic): on 7x7 images of 2 channels,
main.0 Conv2d(2, 3, 4, 2, 1) LeakyReLU(0.2), main.2 Conv2d(3, 4, 3, 1, 1)
LeakyReLU(0.2), main.4 Conv2d(4, 1, 3) (no biases), N(0, 0.2) weights
(seed 1); five real and five fake images. Stored in the engine's layouts:
images NHWC (flat [n, 7*7*2]), weights [out, k, k, in]. eps is the engine's draw:
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


def dense_critic():
    torch.manual_seed(0)
    layers = []
    for i, (inp, out) in enumerate(zip(WIDTHS, WIDTHS[1:])):
        layers.append(torch.nn.Linear(inp, out))
        if i < len(WIDTHS) - 2:
            layers.append(torch.nn.LeakyReLU(0.2))
    critic = torch.nn.Sequential(*layers)
    real = torch.rand(ROWS, WIDTHS[0]) * 2 - 1
    fake = torch.rand(ROWS, WIDTHS[0]) * 2 - 1
    return "dense", "model.", critic, real, fake


def conv_critic():
    torch.manual_seed(1)
    critic = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 4, 2, 1, bias=False), torch.nn.LeakyReLU(0.2),
        torch.nn.Conv2d(3, 4, 3, 1, 1, bias=False), torch.nn.LeakyReLU(0.2),
        torch.nn.Conv2d(4, 1, 3, 1, 0, bias=False))
    for m in critic:
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, 0.0, 0.2)
    real = torch.rand(5, 2, 7, 7) * 2 - 1
    fake = torch.rand(5, 2, 7, 7) * 2 - 1
    return "conv", "main.", critic, real, fake


def engine_layout(t):
    """NCHW images and [out, in, k, k] weights as the engine holds them."""
    return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1) if t.dim() == 4 else t


def write(kind, prefix, critic, real, fake):
    rows = real.shape[0]
    eps = engine_eps(rows)
    e = eps.reshape(rows, *([1] * (real.dim() - 1)))
    x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
    scores = critic(x_hat)
    (g,) = torch.autograd.grad(scores, x_hat, torch.ones_like(scores), create_graph=True)
    norms = g.reshape(rows, -1).norm(2, dim=1)
    penalty = GP_WEIGHT * ((norms - 1) ** 2).mean()
    loss = critic(fake).mean() - critic(real).mean() + penalty
    names = [n for n, _ in critic.named_parameters()]
    grads = torch.autograd.grad(loss, list(critic.parameters()))
    tensors = {(prefix + n): engine_layout(p.detach().clone()) for n, p in critic.named_parameters()}
    tensors.update({k: engine_layout(v) for k, v in dict(real=real, fake=fake, x_hat=x_hat.detach()).items()})
    tensors.update(eps=eps, penalty=penalty.detach().reshape(1), mean_norm=norms.mean().detach().reshape(1))
    tensors["critic_loss"] = loss.detach().reshape(1)
    tensors.update({("grad." + prefix + n): engine_layout(gr) for n, gr in zip(names, grads)})
    out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / f"wgan_gp_{kind}.safetensors"
    out.parent.mkdir(exist_ok=True)
    meta = dict(seed=str(SEED), steps_done=str(STEPS_DONE), gp_weight=str(GP_WEIGHT), torch=torch.__version__)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out), metadata=meta)
    print(f"wrote {out}: penalty {penalty.item():.6f}, critic loss {loss.item():.6f}")


def main():
    write(*dense_critic())
    write(*conv_critic())


if __name__ == "__main__":
    main()
