#!/usr/bin/env bash
# gan-wgpu against PyTorch on the CPU, side by side, interleaved so that the
# machine's speed swings hit both alike. Not used by the tests or CI.
#
#   python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
#   PYTHON=/tmp/torchenv/bin/python bash bench/compare.sh [ROUNDS]
#
# Each round: one full-MNIST epoch, whole process (wall time and peak memory
# from /usr/bin/time), gan-wgpu on its default adapter then PyTorch with 2
# threads and OMP_WAIT_POLICY=PASSIVE; then steps/s: `gan-wgpu bench --quick`
# against `torch_reference.py --steps 200`. It prints each round and the
# medians' ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
PYTHON=${PYTHON:-python3}
cargo build --release --quiet
bin=target/release/gan-wgpu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
measure() { # label, command...: prints "label wall_s peak_MiB"
  local label=$1
  shift
  /usr/bin/time -f "%e %M" -o "$tmp/time" "$@" >"$tmp/out-$label" 2>&1
  read -r wall kib <"$tmp/time"
  echo "$label $wall $((kib / 1024))"
}
: >"$tmp/rows"
for r in $(seq 1 "$rounds"); do
  rm -rf "$tmp/run"
  measure gan-epoch "$bin" train --epochs 1 --eval-every 0 --log-every 100 --out "$tmp/run" | tee -a "$tmp/rows"
  measure torch-epoch "$PYTHON" bench/torch_reference.py --epochs 1 | tee -a "$tmp/rows"
  # Whole outputs to files: a reader that stops early would cut the writer off.
  "$bin" bench --quick >"$tmp/bench.txt" 2>&1
  gan_sps=$(grep -m1 -o '[0-9.]* steps/s' "$tmp/bench.txt" | cut -d' ' -f1)
  "$PYTHON" bench/torch_reference.py --steps 200 >"$tmp/torch.txt"
  torch_sps=$(grep -o '[0-9.]* steps/s' "$tmp/torch.txt" | cut -d' ' -f1)
  echo "gan-steps $gan_sps" | tee -a "$tmp/rows"
  echo "torch-steps $torch_sps" | tee -a "$tmp/rows"
done
"$PYTHON" - "$tmp/rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
col = lambda k, i: [float(r[i]) for r in rows if r[0] == k]
ge, te = statistics.median(col("gan-epoch", 1)), statistics.median(col("torch-epoch", 1))
gs, ts = statistics.median(col("gan-steps", 1)), statistics.median(col("torch-steps", 1))
print(f"epoch, whole process (median of {len(col('gan-epoch', 1))}): gan-wgpu {ge:.1f} s, {statistics.median(col('gan-epoch', 2)):.0f} MiB; "
      f"PyTorch {te:.1f} s, {statistics.median(col('torch-epoch', 2)):.0f} MiB; gan-wgpu / PyTorch = {ge / te:.2f} (target <= 0.80)")
print(f"steps/s: gan-wgpu {gs:.2f}, PyTorch {ts:.2f}; ratio {gs / ts:.2f} (target >= 1.25)")
PY
