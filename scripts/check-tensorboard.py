#!/usr/bin/env python3
"""Reads a run's TensorBoard log with TensorBoard's own reader and checks it
against the run's losses.csv (and quality.csv when there is one).

    python3 scripts/check-tensorboard.py RUN_DIR [--expect-images N]

Checks: every scalar of losses.csv is in the log at the same step with the
same float32 value, and no step is there twice; each grid image decodes as
a PNG of the size it states; the settings text is there. Exits 1 on the
first difference. Needs `pip install tensorboard` (CI: .ci/run).
"""
import argparse
import csv
import struct
import sys
import zlib

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def fail(msg):
    print(f"check-tensorboard: {msg}", file=sys.stderr)
    sys.exit(1)


def f32(x):
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def png_pixels(data):
    """(width, height, channels) of a PNG after inflating its pixel rows."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("an image is not a PNG")
    at, idat, header = 8, b"", None
    while at < len(data):
        (n,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + n]
        if kind == b"IHDR":
            header = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        at += 12 + n
    w, h, depth, colour = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    rows = zlib.decompress(idat)
    if depth != 8 or len(rows) != h * (1 + w * channels):
        fail(f"a {w}x{h} PNG inflates to {len(rows)} bytes")
    return w, h, channels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--expect-images", type=int, default=None, help="grid images per tag")
    a = ap.parse_args()
    acc = EventAccumulator(f"{a.run}/tensorboard", size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    rows = list(csv.DictReader(open(f"{a.run}/losses.csv")))
    columns = {"train/loss_d": "loss_d", "train/loss_g": "loss_g", "train/D(x)": "d_x", "train/D(G(z))": "d_g_z"}
    for tag, col in columns.items():
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        if len(set(steps)) != len(steps):
            fail(f"{tag}: a step is logged twice")
        want = [(int(r["step"]), f32(r[col])) for r in rows]
        got = [(e.step, f32(e.value)) for e in events]
        if got != want:
            diff = next(((g, w) for g, w in zip(got, want) if g != w), (len(got), len(want)))
            fail(f"{tag}: {len(got)} events against {len(want)} rows of losses.csv; first difference {diff}")
    print(f"check-tensorboard: {len(rows)} steps x {len(columns)} scalars equal losses.csv")
    images = [t for t in tags["images"]]
    if "grid/trained" not in images:
        fail(f"no grid/trained images (image tags: {images})")
    for tag in images:
        events = acc.Images(tag)
        if a.expect_images is not None and len(events) != a.expect_images:
            fail(f"{tag}: {len(events)} images, expected {a.expect_images}")
        for e in events:
            w, h, _ = png_pixels(e.encoded_image_string)
            if (w, h) != (e.width, e.height):
                fail(f"{tag} at step {e.step}: states {e.width}x{e.height}, decodes as {w}x{h}")
        print(f"check-tensorboard: {tag}: {len(events)} images decode")
    try:
        quality = list(csv.DictReader(open(f"{a.run}/quality.csv")))
    except FileNotFoundError:
        quality = []
    if quality:
        got = [(e.step, f32(e.value)) for e in acc.Scalars("quality/fid")]
        want = [(int(r["step"]), f32(r["fid"])) for r in quality]
        if [g[0] for g in got] != [w[0] for w in want] or any(abs(g[1] - w[1]) > 1e-3 * max(1, abs(w[1])) for g, w in zip(got, want)):
            fail(f"quality/fid {got} against quality.csv {want}")
        print(f"check-tensorboard: {len(got)} FIDs equal quality.csv")
    if "settings" not in tags["tensors"]:
        fail(f"no settings text (tensor tags: {tags['tensors']})")
    text = acc.Tensors("settings")[-1].tensor_proto.string_val[0].decode()
    if "| model |" not in text:
        fail(f"the settings text has no model row: {text[:200]}")
    print("check-tensorboard: settings text present")


if __name__ == "__main__":
    main()
