#!/usr/bin/env bash
# The GPU check: run on any machine with a GPU (never in CI, which has none).
#
#   bash scripts/gpu-check.sh               build here (needs Rust), then check
#   bash scripts/gpu-check.sh --pack DIR    build small binaries into DIR (and
#                                           DIR.tar.gz) for a machine without Rust
#   bash DIR/gpu-check.sh --bin DIR         check with those prebuilt binaries
#
# It lists the adapters, runs the GPU tests (every kernel family against its
# CPU reference, the step against the CPU step, short training runs, the
# matmul choice) on the first non-CPU adapter -- a machine with no such
# adapter fails the check --, runs `gan-wgpu bench --json`, trains 3 epochs
# on the bundled MNIST, and prints a short report: adapter, driver, the
# matmul variant chosen and its GFLOP/s, steps/s and each epoch's time.
# Everything it wrote is in $OUT (default: ./gpu-check-out).
# GPU_CHECK_ALLOW_CPU=1 takes the first adapter even if it is a CPU one: a
# dry run of the script itself on a machine without a GPU (still a failure
# for the check: no GPU was measured).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$PWD/gpu-check-out}
TESTS=(kernels_gpu step_gpu train_gpu autotune)
mode=build
bin=""
case "${1:-}" in
  --pack) mode=pack; bin=${2:?--pack DIR} ;;
  --bin) mode=prebuilt; bin=${2:?--bin DIR} ;;
  "") ;;
  *) echo "usage: $0 [--pack DIR | --bin DIR]" >&2; exit 2 ;;
esac

# Stripped release binaries (about 20 MB for gan-wgpu instead of 94 MB with
# debug info): the gpu-check profile in Cargo.toml.
build() {
  local root
  root=$(cd "$here/.." && pwd)
  (cd "$root" && cargo build --profile gpu-check --bin gan-wgpu) || return 1
  mkdir -p "$1"
  cp "$root/target/gpu-check/gan-wgpu" "$1/"
  for t in "${TESTS[@]}"; do
    local exe
    exe=$(cd "$root" && cargo test --profile gpu-check --no-run --test "$t" --message-format=json 2>/dev/null |
      grep -o '"executable":"[^"]*"' | tail -n1 | cut -d'"' -f4)
    [ -n "$exe" ] || { echo "gpu-check: could not build test $t" >&2; return 1; }
    cp "$exe" "$1/$t"
  done
  cp "$here/gpu-check.sh" "$1/"
}

if [ "$mode" = pack ]; then
  build "$bin" || exit 1
  tar -czf "$bin.tar.gz" -C "$(dirname "$bin")" "$(basename "$bin")"
  du -sh "$bin" "$bin.tar.gz"
  exit 0
fi
if [ "$mode" = build ]; then
  bin=$OUT/bin
  build "$bin" || exit 1
fi
bin=$(cd "$bin" && pwd)
mkdir -p "$OUT"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg-runtime}
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
failures=0
fail() { echo "gpu-check: FAIL: $*" | tee -a "$OUT/failures.txt" >&2; failures=$((failures + 1)); }
: >"$OUT/failures.txt"

echo "== adapters"
"$bin/gan-wgpu" devices | tee "$OUT/devices.txt" || fail "gan-wgpu devices"
# The first adapter whose type is not Cpu: "[i] name" then "    type X, ...".
index=$(awk '/^\[[0-9]+\]/ { i = substr($1, 2, length($1) - 2) } /^    type / && $2 != "Cpu," { print i; exit }' "$OUT/devices.txt")
if [ -z "$index" ] && [ "${GPU_CHECK_ALLOW_CPU:-0}" = 1 ] && grep -q '^\[0\]' "$OUT/devices.txt"; then
  fail "no GPU adapter: a dry run on adapter 0, a CPU one (GPU_CHECK_ALLOW_CPU=1)"
  index=0
fi
if [ -z "$index" ]; then
  fail "no GPU adapter (every adapter is a CPU one, or none was found)"
  echo "gpu-check: $failures failure(s); see $OUT"
  exit 1
fi
export GAN_WGPU_DEVICE=$index
echo "== GPU tests on adapter $index"
for t in "${TESTS[@]}"; do
  "$bin/$t" --test-threads 1 >"$OUT/test-$t.txt" 2>&1 || fail "tests $t (see $OUT/test-$t.txt)"
  grep -E "^test result|panicked|test adapter" "$OUT/test-$t.txt" | sort -u
done
echo "== bench"
"$bin/gan-wgpu" bench --json "$OUT/bench.json" >"$OUT/bench.txt" 2>&1 || fail "gan-wgpu bench (see $OUT/bench.txt)"
echo "== train --epochs 3"
"$bin/gan-wgpu" train --epochs 3 --out "$OUT/run" >"$OUT/train.txt" 2>&1 || fail "gan-wgpu train (see $OUT/train.txt)"

echo
echo "== report"
grep -m1 '^adapter:' "$OUT/bench.txt" || grep -A1 "^\[$index\]" "$OUT/devices.txt"
grep -m1 '^matmul variant:' "$OUT/bench.txt" || true
grep -m1 '^reductions:' "$OUT/bench.txt" || true
if command -v python3 >/dev/null 2>&1 && [ -s "$OUT/bench.json" ]; then
  python3 - "$OUT/bench.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
step = v.get("step") or {}
print(f"steps/s: {step.get('steps_per_s', float('nan')):.2f} at batch {step.get('batch')}")
rows = [k for k in v.get("kernels", []) if k.get("family") == "matmul" and k.get("chosen")]
for k in rows:
    print(f"  matmul {k['case']}: {k['variant']} {k['median_us']:.1f} us, {k['rate']:.1f} {k.get('unit', '')}")
PY
else
  grep -E 'steps/s' "$OUT/bench.txt" | head -n 3
fi
grep -E '^time of epoch' "$OUT/train.txt" || true
if [ "$failures" -eq 0 ]; then
  echo "gpu-check: all passed; outputs in $OUT"
else
  echo "gpu-check: $failures failure(s): $(tr '\n' ';' <"$OUT/failures.txt")"
  exit 1
fi
