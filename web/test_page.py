#!/usr/bin/env python3
"""The page in headless Chromium, checked against the native CLI.

Serves web/dist, opens the page in headless Chromium on one WebGPU adapter
(SwiftShader, or lavapipe through ANGLE in compatibility mode), and waits
through the DevTools protocol until the page has trained --steps steps with a
fixed seed. Then it asserts:
  - the kernel self-test passed in the page (every shader, Tint and Dawn);
  - the losses are finite, and the first step's loss_d and loss_g equal the
    native CLI's (`gan-wgpu train`, same seed, data and batch) within 1e-4
    (dcgan's loss_g, after D's first Adam step, within 1e-3);
  - the live grid canvas is not blank;
  - the generator the page downloads loads in `gan-wgpu sample`, and gives
    the page's own pixels for the same latent codes within one grey level
    (the page loads the downloaded file back through its file input);
    for cgan, the page's "draw a 7" on the loaded file against
    `gan-wgpu sample --class 7`;
  - the page's live quality of that generator (its classifier file, 1,000
    samples) equals `gan-wgpu eval`'s with the same file, latents and count:
    FID within 2%, the same classes covered, for cgan the conditional
    accuracy within 2 points.
Each model of --models (gan, cgan, then dcgan at batch 16 for 6 steps)
trains in its own page load, in one browser. Then (--own-images 1) the page
trains on a generated folder of colour PNGs chosen through its file input:
the first step's losses equal the CLI's on the same folder, the grid is in
colour. Prints one JSON line of measurements per model. Needs: chromium, websocket-client.

    python3 web/test_page.py --adapter swiftshader --cli target/release/gan-wgpu
"""
import argparse
import base64
import functools
import http.server
import json
import math
import struct
import zlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import websocket  # websocket-client

ADAPTER_FLAGS = {
    # No WebGPU at all: the page must say so in one line.
    "none": ["--disable-features=WebGPU"],
    "swiftshader": ["--use-webgpu-adapter=swiftshader", "--enable-unsafe-swiftshader"],
    "lavapipe-compat": [
        "--use-webgpu-adapter=opengles",
        "--force-webgpu-compat",
        "--use-gl=angle",
        "--use-angle=vulkan",
        "--ignore-gpu-blocklist",
    ],
}


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


class Cdp:
    """A minimal DevTools protocol client on one websocket."""

    def __init__(self, url):
        self.ws = websocket.create_connection(url, timeout=120, suppress_origin=True)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise Fail(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expression, await_promise=False):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in r:
            raise Fail(f"evaluating {expression[:60]!r}: {r['exceptionDetails']}")
        return r["result"].get("value")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(directory):
    handler = functools.partial(QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_chromium(chromium, adapter, profile, window):
    args = [
        chromium,
        "--headless=new",
        "--no-sandbox",
        *([] if adapter == "none" else ["--enable-unsafe-webgpu"]),
        *ADAPTER_FLAGS[adapter],
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--no-first-run",
        f"--window-size={window}",
        "about:blank",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    port_file = os.path.join(profile, "DevToolsActivePort")
    for _ in range(300):
        if os.path.exists(port_file):
            lines = open(port_file).read().split()
            if len(lines) >= 2:
                return proc, int(lines[0]), lines[1]
        if proc.poll() is not None:
            raise Fail(f"chromium exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.1)
    raise Fail("chromium wrote no DevToolsActivePort in 30 s")


def page_status(cdp):
    text = cdp.eval("document.getElementById('status') ? document.getElementById('status').textContent : '{}'")
    try:
        return json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}


def wait_for(cdp, pred, what, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = page_status(cdp)
        if s.get("error"):
            raise Fail(f"the page shows an error while waiting for {what}: {s['error']}")
        if pred(s):
            return s
        time.sleep(0.5)
    raise Fail(f"timed out after {timeout} s waiting for {what}; status: {json.dumps(page_status(cdp))[:1500]}")


def check_no_webgpu(cdp):
    """Without WebGPU the page says so, and how to get it, in one line."""
    deadline = time.time() + 60
    while time.time() < deadline:
        error = page_status(cdp).get("error")
        if error:
            break
        time.sleep(0.2)
    check(error and "WebGPU" in error and "\n" not in error, f"without WebGPU the page shows {error!r}")
    shown = cdp.eval("document.getElementById('error').textContent")
    check(shown == error, f"the page shows {shown!r}, the status says {error!r}")
    print(json.dumps({"adapter": "none", "error": error}))


def native_first_losses(cli, model, seed, batch, limit, tmp, data=(), run="default"):
    """The first step's (loss_d, loss_g) of the CLI's run; `run` names its folder among the others of this model."""
    out = os.path.join(tmp, f"native-run-{model}-{run}")
    subprocess.run(
        [cli, "train", "--model", model, "--epochs", "1", "--limit", str(limit), "--batch-size", str(batch),
         "--seed", str(seed), "--log-every", "1", "--eval-every", "0", "--stop-after-steps", "2", "--out", out,
         *data],
        check=True, stdout=subprocess.DEVNULL, env={**os.environ, "GAN_WGPU_CACHE_DIR": os.path.join(tmp, "cache")},
    )
    rows = open(os.path.join(out, "losses.csv")).read().splitlines()
    header = rows[0].split(",")
    first = dict(zip(header, rows[1].split(",")))
    check(first["step"] == "1", f"native losses.csv starts at step {first['step']}")
    return float(first["loss_d"]), float(first["loss_g"])


def check_model(cdp, a, model, first, tmp, server, downloads):
    """One page load training `model`; returns its measurements."""
    # dcgan's step is about 20 times the MLP's: a smaller batch and fewer
    # steps keep SwiftShader within minutes.
    if model == "dcgan":
        a = argparse.Namespace(**{**vars(a), "batch": min(a.batch, 16), "steps": min(a.steps, 6)})
    native = native_first_losses(a.cli, model, a.seed, a.batch, a.limit, tmp)
    # quality_every=steps: the page scores the generator it then downloads.
    query = (f"autostart=1&steps={a.steps}&seed={a.seed}&batch={a.batch}&limit={a.limit}&model={model}"
             f"&quality_every={a.steps}")
    if first:
        query += "&selftest=1"
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html?{query}"
    t0 = time.time()
    cdp.call("Page.navigate", url=url)
    status = wait_for(cdp, lambda s: s.get("done") and (s.get("settings") or {}).get("model") == model
                      and (s.get("quality_off") or any(q["step"] == a.steps for q in s.get("quality", []))),
                      f"{a.steps} training steps of {model}, then its live quality", a.timeout)
    page_seconds = time.time() - t0

    # The self-test: every kernel family against its CPU reference.
    passed = None
    if first:
        st = status.get("selftest") or {}
        failed = [r for r in st.get("results", []) if not r["ok"]]
        check(not failed, f"kernel self-test failed in the page: {failed}")
        passed = st.get("passed", 0)
        check(passed >= 10, f"the self-test ran {passed} checks")

    # Losses: finite, and the first step's equal the CLI's.
    check(status["steps"] == a.steps, f"the page ran {status['steps']} steps, not {a.steps}")
    for k in ("loss_d", "loss_g", "first_loss_d", "first_loss_g"):
        check(isinstance(status.get(k), (int, float)) and math.isfinite(status[k]), f"{k} = {status.get(k)}")
    dd, dg = abs(status["first_loss_d"] - native[0]), abs(status["first_loss_g"] - native[1])
    # loss_g follows D's first Adam step, which moves every weight by about
    # lr whatever its gradient's size: a gradient within rounding of 0 may
    # take either sign on two adapters. dcgan has thousands of such weights
    # (no biases, N(0, 0.02) init), so its loss_g is held to 1e-3.
    tol_g = 1e-3 if model == "dcgan" else 1e-4
    check(dd <= 1e-4 and dg <= tol_g,
          f"{model} first-step losses: page {status['first_loss_d']}, {status['first_loss_g']}; native CLI {native}")

    # The live grid is drawn: many grey levels, not one colour.
    levels = cdp.eval(
        "(() => { const c = document.getElementById('grid');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " const seen = new Set(); for (let i = 0; i < d.length; i += 4) seen.add(d[i]); return seen.size; })()"
    )
    # dcgan after 6 steps draws in evaluation mode from running statistics
    # still far from its batches': faint images, fewer levels.
    check(levels >= (16 if model == "dcgan" else 32), f"the {model} grid canvas shows {levels} grey levels: blank")

    if a.screenshot and first:
        shot = cdp.call("Page.captureScreenshot", format="png")
        with open(a.screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))

    # Download the generator, load it back into the page, sample seed 0
    # (cgan: "draw a 7").
    for f in os.listdir(downloads):
        os.remove(os.path.join(downloads, f))
    cdp.eval("document.getElementById('download-g').click()")
    deadline = time.time() + 60
    saved = []
    while time.time() < deadline and not saved:
        saved = [f for f in os.listdir(downloads) if f.endswith(".safetensors")]
        time.sleep(0.2)
    check(saved, "the page's generator download did not arrive")
    gen_path = os.path.join(tmp, f"page-{model}-generator.safetensors")
    time.sleep(0.5)
    shutil.copy(os.path.join(downloads, saved[0]), gen_path)
    doc = cdp.call("DOM.getDocument")
    node = cdp.call("DOM.querySelector", nodeId=doc["root"]["nodeId"], selector="#gen-file")
    cdp.call("DOM.setFileInputFiles", files=[gen_path], nodeId=node["nodeId"])
    wait_for(cdp, lambda s: (s.get("sample") or {}).get("from") == "file", "sampling the loaded file", 300)
    cli_args = ["--count", "25", "--seed", "0"]
    if model == "cgan":
        check(not cdp.eval("document.getElementById('draw-7').disabled"), "draw a 7 is disabled for a cgan file")
        cdp.eval("document.getElementById('draw-7').click()")
        wait_for(cdp, lambda s: (s.get("sample") or {}).get("class") == 7, "drawing a 7 from the file", 300)
        cli_args += ["--class", "7"]
    page_pixels = base64.b64decode(cdp.eval("window.ganLastSample"))
    idx = os.path.join(tmp, f"cli-samples-{model}.idx")
    subprocess.run([a.cli, "sample", "--checkpoint", gen_path, *cli_args, "--idx", idx],
                   check=True, stdout=subprocess.DEVNULL)
    cli_pixels = open(idx, "rb").read()[16:]
    check(len(cli_pixels) == len(page_pixels) == 25 * 784,
          f"{len(page_pixels)} pixels in the page, {len(cli_pixels)} from the CLI")
    worst = max(abs(p - c) for p, c in zip(page_pixels, cli_pixels))
    check(worst <= 1, f"{model}: page and CLI samples differ by up to {worst} grey levels")

    # The live quality: the page's scores of the generator it downloaded
    # equal `gan-wgpu eval`'s with the same classifier file, latents and count.
    check(not status.get("quality_off"), f"the page's live quality is off: {status.get('quality_off')}")
    page_q = next(q for q in status["quality"] if q["step"] == a.steps)
    eval_json = os.path.join(tmp, f"eval-{model}.json")
    subprocess.run([a.cli, "eval", "--checkpoint", gen_path, "--classifier", os.path.join(a.dist, status["scorer"]["name"]),
                    "--count", str(page_q["n"]), "--seed", str(page_q["seed"]), "--json", eval_json],
                   check=True, stdout=subprocess.DEVNULL)
    cli_q = json.load(open(eval_json))
    fid_rel = abs(page_q["fid"] - cli_q["fid"]) / cli_q["fid"]
    check(fid_rel <= 0.02, f"{model}: the page's FID {page_q['fid']:.3f}, eval's {cli_q['fid']:.3f}")
    check(page_q["classes_covered"] == cli_q["classes_covered"],
          f"{model}: the page covers {page_q['classes_covered']} classes, eval {cli_q['classes_covered']}")
    if model == "cgan":
        acc = (page_q.get("conditional_accuracy"), cli_q.get("conditional_accuracy"))
        check(None not in acc and abs(acc[0] - acc[1]) <= 0.02, f"cgan conditional accuracy: page, eval {acc}")
    else:
        acc = None

    error = None
    if first:
        # A file that is no checkpoint: one line in the page, no crash.
        bad = os.path.join(tmp, "not-a-checkpoint.safetensors")
        with open(bad, "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
        cdp.call("DOM.setFileInputFiles", files=[bad], nodeId=node["nodeId"])
        deadline = time.time() + 60
        while time.time() < deadline and not page_status(cdp).get("error"):
            time.sleep(0.2)
        error = page_status(cdp).get("error") or ""
        check("not-a-checkpoint.safetensors" in error and "\n" not in error,
              f"a bad checkpoint file gave the error {error!r}")
        shown = cdp.eval("document.getElementById('error').textContent")
        check(shown == error, f"the page shows {shown!r}, the status says {error!r}")

    return {
        "adapter": a.adapter,
        "model": model,
        "page_adapter": status["adapter"].get("name"),
        "matmul": status["adapter"].get("matmul"),
        "reductions": status["adapter"].get("reductions"),
        "steps": status["steps"],
        "steps_per_s": status["steps_per_s"],
        "first_loss_page": [status["first_loss_d"], status["first_loss_g"]],
        "first_loss_native": list(native),
        "sample_max_grey_diff": worst,
        "quality_page": {k: page_q.get(k) for k in ("n", "fid", "classes_covered", "conditional_accuracy", "seconds")},
        "quality_eval": {"fid": cli_q["fid"], "classes_covered": cli_q["classes_covered"],
                         "conditional_accuracy": cli_q.get("conditional_accuracy")},
        "selftest_passed": passed,
        "page_seconds": round(page_seconds, 1),
        "bad_file_error": error,
    }


def png_rgb(path, w, h, rgb):
    """An 8-bit RGB PNG, written chunk by chunk (no imaging library needed)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + rgb[y * w * 3:(y + 1) * w * 3] for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def check_own_colour_images(cdp, a, tmp, server):
    """The page trains on a chosen colour folder with the hinge loss chosen:
    48 opaque 32x32 RGB PNGs (and two files that are no images, skipped),
    decoded by the browser into the same bytes the CLI reads, so the first
    step's losses equal `gan-wgpu train --data DIR --image-size 32 --loss
    hinge`'s; the live grid is in colour."""
    folder = os.path.join(tmp, "colour")
    os.makedirs(folder)
    for n in range(48):
        rgb = bytes(((x * (n % 7 + 1) + 40 * (n % 3)) % 256 if c == 0 else (y * 5 + n) % 256 if c == 1 else (x + y + 9 * n) % 256)
                    for y in range(32) for x in range(32) for c in range(3))
        png_rgb(os.path.join(folder, f"img{n:03d}.png"), 32, 32, rgb)
    for bad in ("broken.png", "notes.txt"):
        with open(os.path.join(folder, bad), "wb") as f:
            f.write(b"not an image")
    steps, batch = 6, 16
    url = (f"http://127.0.0.1:{server.server_address[1]}/index.html?steps={steps}&seed={a.seed}&batch={batch}"
           f"&model=gan&loss=hinge&quality_every=0")
    cdp.call("Page.navigate", url=url)
    wait_for(cdp, lambda s: s.get("settings") is not None, "the page to open its engine", 300)
    doc = cdp.call("DOM.getDocument")
    node = cdp.call("DOM.querySelector", nodeId=doc["root"]["nodeId"], selector="#image-files")
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    cdp.call("DOM.setFileInputFiles", files=files, nodeId=node["nodeId"])
    status = wait_for(cdp, lambda s: (s.get("data") or {}).get("count") == 48, "decoding the chosen images", 300)
    d = status["data"]
    check(d["channels"] == 3 and d["size"] == 32 and sorted(d["skipped"]) == ["broken.png", "notes.txt"],
          f"the page decoded {d}")
    cdp.eval("document.getElementById('start').click()")
    status = wait_for(cdp, lambda s: s.get("done") and s.get("steps") == steps, f"{steps} steps on the chosen images", a.timeout)
    check((status.get("settings") or {}).get("loss") == "hinge", f"the page trained with {status.get('settings')}")
    native = native_first_losses(a.cli, "gan", a.seed, batch, 48, tmp,
                                 ("--data", folder, "--image-size", "32", "--loss", "hinge"), run="own-images")
    dd, dg = abs(status["first_loss_d"] - native[0]), abs(status["first_loss_g"] - native[1])
    check(dd <= 1e-4 and dg <= 1e-4,
          f"first-step losses on the chosen images: page {status['first_loss_d']}, {status['first_loss_g']}; CLI {native}")
    coloured = cdp.eval(
        "(() => { const c = document.getElementById('grid');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] !== d[i + 1] || d[i + 1] !== d[i + 2]) n++; return n; })()"
    )
    check(coloured > 1000, f"the live grid has {coloured} coloured pixels: not in colour")
    return {"own_images": folder, "count": d["count"], "channels": d["channels"], "first_loss_d": status["first_loss_d"],
            "native_first_loss_d": native[0], "coloured_grid_pixels": coloured}


def check_wgan_gp(cdp, a, tmp, server):
    """The page trains gan with the WGAN-GP loss chosen (its critic's double
    backward in the browser, 5 critic steps a G step as the CLI's default):
    the first step's losses equal `gan-wgpu train --loss wgan-gp`'s, and the
    later ones stay finite."""
    steps, batch = 10, 32
    url = (f"http://127.0.0.1:{server.server_address[1]}/index.html?autostart=1&steps={steps}&seed={a.seed}"
           f"&batch={batch}&limit={a.limit}&model=gan&loss=wgan-gp&quality_every=0")
    cdp.call("Page.navigate", url=url)
    status = wait_for(cdp, lambda s: s.get("done") and s.get("steps") == steps
                      and (s.get("settings") or {}).get("loss") == "wgan-gp", f"{steps} WGAN-GP steps", a.timeout)
    native = native_first_losses(a.cli, "gan", a.seed, batch, a.limit, tmp, ("--loss", "wgan-gp"), run="wgan-gp")
    dd, dg = abs(status["first_loss_d"] - native[0]), abs(status["first_loss_g"] - native[1])
    check(dd <= 1e-4 * max(1.0, abs(native[0])) and dg <= 1e-4 * max(1.0, abs(native[1])),
          f"first WGAN-GP step's losses: page {status['first_loss_d']}, {status['first_loss_g']}; CLI {native}")
    return {"loss": "wgan-gp", "steps": status["steps"], "first_loss_d": status["first_loss_d"],
            "native_first_loss_d": native[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adapter", choices=sorted(ADAPTER_FLAGS), required=True)
    ap.add_argument("--dist", default="web/dist")
    ap.add_argument("--cli", default="target/release/gan-wgpu")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    ap.add_argument("--models", default="gan,cgan,dcgan", help="the models to train in the page, in order")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--limit", type=int, default=640)
    ap.add_argument("--timeout", type=int, default=900, help="seconds for the page's training")
    ap.add_argument("--screenshot", help="save a PNG of the page after training (the first model)")
    ap.add_argument("--own-images", type=int, default=1, help="1: also train on a generated colour folder chosen in the page")
    ap.add_argument("--wgan-gp", type=int, default=1, help="1: also train gan with the WGAN-GP loss chosen in the page")
    ap.add_argument("--window", default="1366,768", help="browser window size, W,H (the layout's target screen)")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="gan-wgpu-page-")
    server = serve(a.dist)
    proc = None
    try:
        proc, port, browser_path = start_chromium(a.chromium, a.adapter, os.path.join(tmp, "profile"), a.window)
        downloads = os.path.join(tmp, "downloads")
        os.makedirs(downloads)
        browser = Cdp(f"ws://127.0.0.1:{port}{browser_path}")
        browser.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=downloads)
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        cdp = Cdp(page["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        cdp.call("Runtime.enable")
        if a.adapter == "none":
            url = f"http://127.0.0.1:{server.server_address[1]}/index.html?autostart=1"
            cdp.call("Page.navigate", url=url)
            check_no_webgpu(cdp)
            return
        for i, model in enumerate(a.models.split(",")):
            print(json.dumps(check_model(cdp, a, model, i == 0, tmp, server, downloads)))
        if a.own_images:
            print(json.dumps(check_own_colour_images(cdp, a, tmp, server)))
        if a.wgan_gp:
            print(json.dumps(check_wgan_gp(cdp, a, tmp, server)))
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print(f"page test failed: {e}", file=sys.stderr)
        sys.exit(1)
