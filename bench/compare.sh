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
# against `torch_reference.py --steps 200`. It prints the CPU model, each
# round, and the medians: both FMA ceilings from `bench` (one loop-carried
# update per FMA, and the real one: one per 8 FMAs in registers), the
# chosen matmul's GFLOP/s on the model's three large products as a fraction
# of the real ceiling, and the ratios against PyTorch. The ceilings and the
# ratios depend on the CPU family (docs/performance.md), so the CPU is
# printed first.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
PYTHON=${PYTHON:-python3}
cargo build --release --quiet
bin=target/release/gan-wgpu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
  "(family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')" \
  "model $(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')), $(nproc) CPUs"
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
  # bench's table: the ceilings and the chosen ('*') variant's rate on the
  # model's large products (G's two widest layers and D's input layer, in
  # each form: forward, input gradient, weight gradient).
  awk '$1 == "ceiling" && /one update per FMA /  { for (i = 1; i <= NF; i++) if ($i == "GF/s") print "ceiling-per-fma", $(i - 1) }
       $1 == "ceiling" && /the real ceiling/     { for (i = 1; i <= NF; i++) if ($i == "GF/s") print "ceiling-real", $(i - 1) }
       $1 == "matmul" && / (naive|tiled|reg4x4|sg32x32)\* / && !/fused/ && $2 ~ /^(128x784x1024|128x1024x784|784x1024x128|128x1024x512|128x512x1024|1024x512x128|128x512x784|128x784x512|512x784x128)$/ {
         for (i = 1; i <= NF; i++) if ($i == "GF/s") print "matmul-" $2 "-" $3, $(i - 1) }' \
    "$tmp/bench.txt" | tee -a "$tmp/rows"
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
per_fma, real = statistics.median(col("ceiling-per-fma", 1)), statistics.median(col("ceiling-real", 1))
print(f"FMA ceilings (GFLOP/s): one update per FMA {per_fma:.1f}; the real one (one per 8 FMAs, in registers) {real:.1f}")
for k in sorted({r[0] for r in rows if r[0].startswith("matmul-")}):
    g = statistics.median(col(k, 1))
    print(f"  {k[7:]:<28} {g:6.1f} GFLOP/s = {100 * g / real:4.1f}% of the real ceiling")
PY
