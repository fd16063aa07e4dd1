#!/usr/bin/env bash
# Submits a sweep to Slurm: one array task per run of SWEEP_FILE (one line of
# `train` flags per run; grid.sh makes the product of values), then a compare
# job that waits for the whole array (afterany). Prints the two job ids.
#
#   scripts/sweep/submit.sh SWEEP_FILE SWEEP_DIR [FLAG...]
#
# FLAGs go to every run (e.g. --epochs 20 --eval-every 5). Environment:
# GAN_WGPU (the binary; default gan-wgpu on PATH), SWEEP_PARALLEL (most tasks
# running at once; default all), SBATCH_ARGS (more sbatch options, e.g.
# "--partition=gpu --gres=gpu:1").
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=sweep-lib.sh
source "$here/sweep-lib.sh"
sweep_file=$(readlink -f "$1")
sweep_dir=$(readlink -m "$2")
shift 2
n=$(sweep_runs "$sweep_file" | wc -l)
[ "$n" -gt 0 ] || { echo "submit: $sweep_file holds no runs" >&2; exit 2; }
mkdir -p "$sweep_dir"
cp "$sweep_file" "$sweep_dir/sweep.txt"
export SWEEP_SCRIPTS=$here
# shellcheck disable=SC2086 # SBATCH_ARGS holds several options
array=$(sbatch --parsable ${SBATCH_ARGS:-} --array="0-$((n - 1))%${SWEEP_PARALLEL:-$n}" \
  --output="$sweep_dir/slurm-%A_%a.out" "$here/array.sbatch" "$sweep_dir/sweep.txt" "$sweep_dir" "$@")
array=${array%%;*}
# shellcheck disable=SC2086
compare=$(sbatch --parsable ${SBATCH_ARGS:-} --dependency="afterany:$array" \
  --output="$sweep_dir/slurm-compare-%j.out" "$here/compare.sbatch" "$sweep_dir")
compare=${compare%%;*}
echo "array $array ($n runs) and compare $compare; runs in $sweep_dir"
