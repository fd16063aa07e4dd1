# Helpers shared by the sweep scripts (sourced).

# The runs of a sweep file: its lines without blanks and # comments.
sweep_runs() {
  grep -v -E '^[[:space:]]*(#|$)' "$1"
}

# Run N's flags (N from 0).
sweep_line() {
  sweep_runs "$1" | sed -n "$(($2 + 1))p"
}

# A folder name from a run's flags: "--seed 1 --lr 2e-4" -> "seed-1_lr-2e-4".
run_name() {
  echo "$1" | sed -E 's/^[[:space:]]*--//; s/[[:space:]]+--/_/g; s/[[:space:]]+/-/g; s#[^A-Za-z0-9._=+-]#_#g'
}
