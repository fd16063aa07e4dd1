#!/usr/bin/env bash
# What the run log (metrics.jsonl, the TensorBoard event file, summary.json)
# costs a training epoch: interleaved pairs of the same run with and without
# it (the hidden --no-run-log), at --log-every 1 (every step logged: the
# worst case) and at the default. Prints each pair's epoch seconds and the
# mean ratio. docs/performance.md has the figures.
#
#   bench/run_log_overhead.sh [PAIRS] [LIMIT]
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-4}
limit=${2:-20000}
gan=${GAN_WGPU:-target/release/gan-wgpu}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
epoch_seconds() {
  rm -rf "$tmp/run"
  "$gan" train --epochs 1 --limit "$limit" --batch-size 64 --out "$tmp/run" "$@" 2>/dev/null |
    sed -n 's/^time of epoch 0 is \([0-9.]*\)s$/\1/p'
}
for every in 1 default; do
  flags=()
  [ "$every" = default ] || flags=(--log-every "$every")
  ratios=()
  for p in $(seq "$pairs"); do
    with=$(epoch_seconds "${flags[@]}")
    without=$(epoch_seconds "${flags[@]}" --no-run-log)
    ratio=$(python3 -c "print(f'{$with / $without:.4f}')")
    ratios+=("$ratio")
    echo "log-every $every, pair $p: with the log $with s, without $without s, ratio $ratio"
  done
  python3 -c "import statistics as s; r=[$(IFS=,; echo "${ratios[*]}")]; print(f'log-every $every: mean ratio {s.mean(r):.4f}, median {s.median(r):.4f}')"
done
