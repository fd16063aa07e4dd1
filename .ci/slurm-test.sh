#!/usr/bin/env bash
# The sweep scripts on a real one-node Slurm (Debian's slurmctld, slurmd
# and munge; no cgroups, no accounting), started here and stopped at the
# end:
#  1. scripts/sweep/submit.sh runs a 4-task array of tiny runs (2 seeds x 2
#     learning rates) and the dependent compare job; every run must end
#     done and the comparison must list all four;
#  2. a longer run is requeued (scontrol requeue: SIGTERM, then Slurm starts
#     the task again); it must resume from its state and end bit for bit
#     equal to the same run without Slurm (losses.csv and the generator).
# Usage: .ci/slurm-test.sh GAN_WGPU_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
gan=$(readlink -f "${1:?the gan-wgpu binary}")
start=$(date +%s)
say() { echo "slurm-test: $*"; }
die() {
  say "FAILED: $*" >&2
  exit 1
}

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
fi

root=$(mktemp -d /tmp/slurm-ci.XXXXXX)
mkdir -p "$root/state" "$root/spool" "$root/log"
host=$(hostname -s)
export SLURM_CONF=$root/slurm.conf
# Ports away from a real Slurm's 6817/6818; a requeued job may start again
# after cred_expire (default 120 s): 10 s here.
cat >"$SLURM_CONF" <<CONF
ClusterName=ci
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=30
MinJobAge=3600
StateSaveLocation=$root/state
SlurmdSpoolDir=$root/spool
SlurmctldPidFile=$root/slurmctld.pid
SlurmdPidFile=$root/slurmd.pid
SlurmctldLogFile=$root/log/slurmctld.log
SlurmdLogFile=$root/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

started_munge=0
stop_daemons() {
  scancel --user=root 2>/dev/null || true
  for pidfile in "$root/slurmd.pid" "$root/slurmctld.pid"; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  [ "$started_munge" = 1 ] && pkill -x munged 2>/dev/null || true
  sleep 1
  rm -rf "$root"
}
trap stop_daemons EXIT
# A munged that answers (a credential it encodes decodes) is used as it is;
# otherwise one is started for the test (and stopped at its end).
munge_answers() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_answers; then
  mkdir -p /run/munge && chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged --force
  started_munge=1
  for _ in $(seq 20); do
    munge_answers && break
    sleep 0.5
  done
  munge_answers || die "munged does not answer"
fi
slurmctld
slurmd
for _ in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -q idle && break
  sleep 1
done
sinfo -h -o %T | grep -q idle || { cat "$root"/log/*.log; die "the node did not come up"; }
say "one-node Slurm up ($(sinfo -V)) after $(($(date +%s) - start)) s"

# Waits for job $1 (and its array tasks) to leave the queue (at most $2 s).
wait_job() {
  local t0
  t0=$(date +%s)
  while squeue -h -j "$1" 2>/dev/null | grep -q .; do
    [ $(($(date +%s) - t0)) -lt "$2" ] || { squeue; die "job $1 still queued after $2 s"; }
    sleep 1
  done
}

export GAN_WGPU=$gan
work=$root/work
mkdir -p "$work"

# 1. A 4-task array and its comparison.
scripts/sweep/grid.sh --seed 1 2 --lr 2e-4 1e-4 >"$work/sweep.txt"
ids=$(scripts/sweep/submit.sh "$work/sweep.txt" "$work/sweep" --limit 512 --epochs 2 --batch-size 64 --log-every 4)
say "$ids"
compare_job=$(echo "$ids" | sed -E 's/.*compare ([0-9]+).*/\1/')
wait_job "$compare_job" 900
for line in "seed-1_lr-2e-4" "seed-1_lr-1e-4" "seed-2_lr-2e-4" "seed-2_lr-1e-4"; do
  grep -q '"exit_reason": "done"' "$work/sweep/$line/summary.json" ||
    { cat "$work"/sweep/slurm-*.out; die "run $line did not end done"; }
  grep -q "^| $line |" "$work/sweep/compare/table.md" || { cat "$work"/sweep/slurm-compare-*.out; die "compare lists no $line"; }
done
[ -s "$work/sweep/compare/compare.png" ] && [ -s "$work/sweep/compare/grids.png" ] || die "compare wrote no figure or sheet"
grep -q "4 runs (4 done)" "$work"/sweep/slurm-compare-*.out || die "compare did not count 4 done runs"
cat "$work/sweep/compare/table.md"
say "array of 4 and compare done after $(($(date +%s) - start)) s"

# 2. A requeued task resumes bit for bit. 128 steps; requeued once its
# metrics.jsonl has logged step 8 (the kill lands wherever the run is then).
flags="--seed 7 --limit 4096 --epochs 2 --batch-size 64 --log-every 2"
echo "$flags" >"$work/requeue.txt"
job=$(SWEEP_SCRIPTS=$PWD/scripts/sweep sbatch --parsable --array=0 --output="$work/requeue-%A_%a.out" \
  scripts/sweep/array.sbatch "$work/requeue.txt" "$work/requeue")
run="$work/requeue/seed-7_limit-4096_epochs-2_batch-size-64_log-every-2"
t0=$(date +%s)
until grep -q '"step":8,' "$run/metrics.jsonl" 2>/dev/null; do
  [ $(($(date +%s) - t0)) -lt 300 ] || { cat "$work"/requeue-*.out; die "the run logged no step 8"; }
  sleep 0.2
done
scontrol requeue "${job}_0"
say "requeued ${job}_0"
wait_job "$job" 600
out=$(cat "$work"/requeue-*.out)
echo "$out" | grep -q "stopped at epoch" || { echo "$out"; die "the requeued task saved no state on SIGTERM"; }
echo "$out" | grep -q "restart 1" || { echo "$out"; die "Slurm did not start the task again"; }
echo "$out" | grep -q "resuming from" || { echo "$out"; die "the restarted task did not resume"; }
grep -q '"exit_reason": "done"' "$run/summary.json" || die "the requeued run did not end done"
# shellcheck disable=SC2086
"$gan" train $flags --out "$work/reference" >/dev/null
cut -d, -f1-6 "$run/losses.csv" | cmp - <(cut -d, -f1-6 "$work/reference/losses.csv") ||
  die "the requeued run's losses differ from the run without Slurm"
cmp "$run/checkpoints/generator_1.safetensors" "$work/reference/checkpoints/generator_1.safetensors" ||
  die "the requeued run's generator differs from the run without Slurm"
say "requeued run resumed at $(echo "$out" | grep -o 'stopped at epoch [0-9]*, step [0-9]*') and matches the run without Slurm bit for bit"
say "passed in $(($(date +%s) - start)) s"
