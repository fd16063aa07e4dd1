#!/usr/bin/env python3
"""Loads a gan-wgpu dcgan checkpoint (32x32 or 64x64, any channels) into
PyTorch's examples/dcgan networks with load_state_dict(strict=True), and
compares the generator's images with `gan-wgpu sample`'s for the same
latent codes (eval mode: batch norm from running statistics).

    python3 scripts/check-pytorch-dcgan.py --cli target/release/gan-wgpu \\
        --generator run/checkpoints/generator_0.safetensors [--discriminator ...]

Needs torch, safetensors and numpy. Prints the largest difference in grey
levels (per channel) and exits 1 when it is over 1.
"""
import argparse, json, os, subprocess, sys, tempfile
import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file
from safetensors import safe_open


# examples/dcgan/main.py's networks (ngpu=1), with its globals as arguments.
class Generator(nn.Module):
    def __init__(self, ngpu, nz, ngf, nc, side=64):
        super().__init__()
        self.ngpu = ngpu
        if side == 64:
            layers = [nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
                      nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True)]
        else:  # 32x32: the same pattern one layer shorter
            layers = [nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
                   nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
                   nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self, ngpu, ndf, nc, side=64):
        super().__init__()
        self.ngpu = ngpu
        layers = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                  nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
                  nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True)]
        top = ndf * 4
        if side == 64:
            layers += [nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True)]
            top = ndf * 8
        layers += [nn.Conv2d(top, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, input):
        return self.main(input).view(-1, 1).squeeze(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", default="target/release/gan-wgpu")
    ap.add_argument("--generator", required=True)
    ap.add_argument("--discriminator")
    ap.add_argument("--count", type=int, default=16)
    a = ap.parse_args()
    with safe_open(a.generator, "pt") as f:
        meta = f.metadata()
    side, nc = int(meta["image_height"]), int(meta.get("image_channels", "1"))
    state = load_file(a.generator)
    nz, ngf = state["main.0.weight"].shape[0], state[f"main.{3 * (2 if side == 32 else 3) + 3}.weight"].shape[0]
    g = Generator(1, nz, ngf, nc, side)
    g.load_state_dict(state, strict=True)
    g.eval()
    if a.discriminator:
        d = Discriminator(1, ngf, nc, side)
        d.load_state_dict(load_file(a.discriminator), strict=True)
    z = np.random.default_rng(0).standard_normal((a.count, nz)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        zpath, idx = os.path.join(tmp, "z.npy"), os.path.join(tmp, "s.idx")
        np.save(zpath, z)
        subprocess.run([a.cli, "sample", "--checkpoint", a.generator, "--latent", zpath, "--idx", idx],
                       check=True, stdout=subprocess.DEVNULL)
        raw = open(idx, "rb").read()
    ndims = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndims)]
    engine = np.frombuffer(raw[4 + 4 * ndims:], np.uint8).reshape(dims).astype(np.int32)
    with torch.no_grad():
        out = g(torch.from_numpy(z).view(a.count, nz, 1, 1))
    pixels = ((out + 1) * 127.5).round().clamp(0, 255).to(torch.int32).permute(0, 2, 3, 1).numpy()
    pixels = pixels.reshape(engine.shape)
    diff = int(np.abs(pixels - engine).max())
    print(json.dumps({"side": side, "channels": nc, "nz": int(nz), "ngf": int(ngf), "strict_load": True,
                      "discriminator_loaded": bool(a.discriminator), "samples": a.count,
                      "max_grey_level_diff": diff, "torch": torch.__version__}))
    sys.exit(0 if diff <= 1 else 1)


if __name__ == "__main__":
    main()
