#!/usr/bin/env bash
# Builds the page into web/dist/: the engine as wasm (wasm-bindgen), the
# page (web/static: HTML, script, the live quality's classifier file), and
# MNIST's training images and labels (the same
# gz files the CLI embeds). Installs the wasm target and wasm-bindgen-cli at the version
# Cargo.lock pins when they are missing (about 8 minutes the first time).
# Serve with: python3 -m http.server -d web/dist
set -euo pipefail
cd "$(dirname "$0")/.."
dist=web/dist
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$version" ] || { echo "build.sh: no wasm-bindgen version in Cargo.lock" >&2; exit 1; }

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
  echo "build.sh: installing wasm-bindgen-cli $version"
  # Not --locked: the crate's lock file pins a dependency the index lacks.
  cargo install wasm-bindgen-cli --version "$version"
fi

cargo build -p gan-wgpu-web --profile web --target wasm32-unknown-unknown
rm -rf "$dist"
mkdir -p "$dist/mnist"
wasm-bindgen --target web --no-typescript --out-dir "$dist" \
  target/wasm32-unknown-unknown/web/gan_wgpu_web.wasm
cp web/static/* "$dist/"
cp assets/mnist/train/train-images-idx3-ubyte.gz assets/mnist/train/train-labels-idx1-ubyte.gz "$dist/mnist/"
echo "build.sh: built $dist ($(du -k "$dist/gan_wgpu_web_bg.wasm" | cut -f1) KiB of wasm)"
echo "serve it: python3 -m http.server -d $dist   (then open http://localhost:8000)"
