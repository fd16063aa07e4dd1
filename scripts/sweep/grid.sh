#!/usr/bin/env bash
# Prints a sweep file: the product of each flag's values, one run a line.
#
#   scripts/sweep/grid.sh --seed 1 2 3 --lr 2e-4 1e-4 > sweep.txt
#
# gives 6 lines, "--seed 1 --lr 2e-4" to "--seed 3 --lr 1e-4".
set -euo pipefail
lines=("")
flag=""
values=()
flush() {
  [ -n "$flag" ] || return 0
  [ ${#values[@]} -gt 0 ] || { echo "grid: $flag has no values" >&2; exit 2; }
  local next=() l v
  for l in "${lines[@]}"; do
    for v in "${values[@]}"; do next+=("${l:+$l }$flag $v"); done
  done
  lines=("${next[@]}")
}
for a in "$@"; do
  if [[ $a == --* ]]; then
    flush
    flag=$a
    values=()
  else
    [ -n "$flag" ] || { echo "grid: a value before any --flag: $a" >&2; exit 2; }
    values+=("$a")
  fi
done
flush
printf '%s\n' "${lines[@]}"
