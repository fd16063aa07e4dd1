#!/usr/bin/env bash
# A run's TensorBoard log read by TensorBoard's own reader: a tiny run with
# --eval-every 1, stopped mid-epoch and resumed, then
# scripts/check-tensorboard.py (EventAccumulator) against its losses.csv
# and quality.csv. TensorBoard comes from PyPI into target/tb-venv.
# Usage: .ci/tensorboard-check.sh GAN_WGPU_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
gan=$(readlink -f "${1:?the gan-wgpu binary}")
venv=target/tb-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import tensorboard' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv" || {
    apt-get install -y -qq --no-install-recommends python3-venv >/dev/null && python3 -m venv "$venv"
  }
  "$venv/bin/pip" install -q 'tensorboard>=2.15,<3'
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(--epochs 3 --limit 512 --batch-size 64 --log-every 2 --eval-every 1 --out "$out/run")
# 24 steps; stopped at step 11 (inside epoch 1), then resumed to the end.
"$gan" train "${flags[@]}" --stop-after-steps 11 >/dev/null
"$gan" train "${flags[@]}" --resume "$out/run" >/dev/null
"$venv/bin/python" scripts/check-tensorboard.py "$out/run" --expect-images 3
echo "tensorboard-check: passed"
