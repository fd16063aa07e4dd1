#!/usr/bin/env python3
"""PyTorch's examples/dcgan training loop on the images gan-wgpu decoded,
as the reference run beside an engine run (docs/quality.md): the same
networks (scripts/check-pytorch-dcgan.py's copies of main.py's), the same
schedule (Adam 2e-4 (0.5, 0.999), BCE, real label 1, fake 0, one D step and
one G step a batch, the last partial batch dropped), on the same bytes.

    python3 scripts/reference-dcgan.py ~/.cache/gan-wgpu/image-folders/KEY.bin \\
        --width 16 --epochs 8 --batch-size 64 --out ref-grid.npy

The input is gan-wgpu's cache of a decoded image folder (train once with
--data DIR --image-size S to make it). Prints one line an epoch (losses,
D(x), D(G(z))); writes the last epoch's 25 samples as uint8 HWC .npy.
"""
import argparse, json, os, struct, sys, time
import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
check = __import__("check-pytorch-dcgan")


def read_cache(path):
    b = open(path, "rb").read()
    assert b[:8] == b"GANWIMG1", "not a gan-wgpu image-folder cache"
    n = struct.unpack("<Q", b[8:16])[0]
    h = json.loads(b[16:16 + n])
    dim = h["height"] * h["width"] * h["channels"]
    px = np.frombuffer(b[16 + n:16 + n + h["count"] * dim], np.uint8)
    return px.reshape(h["count"], h["height"], h["width"], h["channels"]), h


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    px, h = read_cache(a.cache)
    side, nc = h["height"], h["channels"]
    data = torch.from_numpy(px.copy()).permute(0, 3, 1, 2).float().sub(127.5).div(127.5)
    g, d = check.Generator(1, 100, a.width, nc, side), check.Discriminator(1, a.width, nc, side)
    for m in list(g.modules()) + list(d.modules()):   # main.py's weights_init
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    b = a.batch_size
    fixed = torch.randn(25, 100, 1, 1)
    for epoch in range(a.epochs):
        t0 = time.time()
        perm = torch.randperm(len(data))
        for i in range(len(data) // b):
            real = data[perm[i * b:(i + 1) * b]]
            d.zero_grad()
            out_real = d(real)
            err_real = bce(out_real, torch.ones(b))
            err_real.backward()
            fake = g(torch.randn(b, 100, 1, 1))
            out_fake = d(fake.detach())
            err_fake = bce(out_fake, torch.zeros(b))
            err_fake.backward()
            opt_d.step()
            g.zero_grad()
            out = d(fake)
            err_g = bce(out, torch.ones(b))
            err_g.backward()
            opt_g.step()
        print(json.dumps({"epoch": epoch, "loss_d": round((err_real + err_fake).item(), 4), "loss_g": round(err_g.item(), 4),
                          "d_x": round(out_real.mean().item(), 4), "d_g_z": round(out.mean().item(), 4),
                          "seconds": round(time.time() - t0, 1)}), flush=True)
    if a.out:
        g.eval()
        with torch.no_grad():
            img = ((g(fixed) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        np.save(a.out, img)


if __name__ == "__main__":
    main()
