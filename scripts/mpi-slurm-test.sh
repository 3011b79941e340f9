#!/usr/bin/env bash
# The MPI build under the one-node Slurm of scripts/slurm-up.sh, through the shipped
# examples/slurm/train-mpi.sbatch (1 node, 2 tasks of 1 CPU, `srun --mpi=pmix`), on the
# synthetic data set of scripts/synthetic-idx.py and configs/mnist-convnet.toml:
#   A  one epoch: COMPLETED, losses and weights bit for bit one process of the plain build;
#   B  a long run, then `scancel`: every rank ends within 30 s, the job is CANCELLED and its
#      last checkpoint loads.
#
# usage (root, Slurm up): scripts/mpi-slurm-test.sh PLAIN_BINARY MPI_BINARY
set -u
plain=$(realpath "${1:?plain binary}")
mpi=$(realpath "${2:?MPI binary}")
cd "$(dirname "$0")/.."
. scripts/mpi-lib.sh
[ "$(id -u)" = 0 ] || { echo "mpi-slurm-test.sh: needs root" >&2; exit 1; }
sinfo -h -o %T | grep -q idle || { echo "mpi-slurm-test.sh: no idle node: run scripts/slurm-up.sh" >&2; exit 1; }
work=$(mktemp -d /tmp/cnn-tui-mpi-slurm.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail=0
mkdir -p "$work/bin"
ln -s "$mpi" "$work/bin/cnn-tui"
python3 scripts/synthetic-idx.py "$work/data" || exit 1
for e in 1 30; do
  sed "s/^epochs = .*/epochs = $e/" configs/mnist-convnet.toml >"$work/e$e.toml"
  printf 'log_every_batches = 1\n' >>"$work/e$e.toml"
done
submit() { # NAME EPOCHS: the job id
  PATH="$work/bin:$PATH" CONFIG="$work/e$2.toml" DATA="$work/data" RUN_DIR="$work/$1" \
    sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --mem=1G \
    --chdir="$work" --output="$work/$1.log" examples/slurm/train-mpi.sbatch
}
state() { scontrol show job "$1" -o 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
wait_end() { # JOB SECONDS
  for _ in $(seq 1 $(($2 * 10))); do
    case $(state "$1") in PENDING | RUNNING | COMPLETING | CONFIGURING | "") sleep 0.1 ;; *) return 0 ;; esac
  done
  return 1
}

echo "== A: srun -n 2 --mpi=pmix, one epoch, against one plain process"
# The sbatch's own --set too: the weights file holds the config.
"$plain" train --headless --no-plots --config "$work/e1.toml" --data "$work/data" --threads 2 \
  --set checkpoint.every_seconds=600 --run-dir "$work/plain" >"$work/plain.log" 2>&1 || { cat "$work/plain.log"; exit 1; }
job=$(submit A 1)
wait_end "$job" 120 || { echo "job $job did not end in 120 s"; scancel "$job"; fail=1; }
same=$(same_as "$work/A" "$work/plain")
echo "job $job: $(state "$job"); $(grep -h 'MPI ranks' "$work/A.log"); test loss $(test_loss "$work/A/metrics.jsonl") (plain $(test_loss "$work/plain/metrics.jsonl")); same as plain: $same"
[ "$(state "$job")" = COMPLETED ] && [ "$same" = yes ] || { tail -20 "$work/A.log"; fail=1; }

echo "== B: scancel ends every rank"
job=$(submit B 30)
for _ in $(seq 1 600); do
  [ -s "$work/B/checkpoints/last" ] && [ "$(pgrep -f -- "^[^ ]*cnn-tui train .*--run-dir $work/B" | wc -l)" -ge 2 ] && break
  sleep 0.1
done
ranks=$(pgrep -f -- "^[^ ]*cnn-tui train .*--run-dir $work/B" | wc -l)
start=$(date +%s.%N)
scancel "$job"
gone=no
for _ in $(seq 1 300); do
  pgrep -f -- "^[^ ]*cnn-tui train .*--run-dir $work/B" >/dev/null || { gone=yes; break; }
  sleep 0.1
done
secs=$(since "$start")
wait_end "$job" 30
last=$(cat "$work/B/checkpoints/last" 2>/dev/null)
echo "job $job: $ranks cnn-tui processes before scancel; all gone: $gone after $secs s; $(state "$job"); last checkpoint $last"
grep -h "received\|Interrupted" "$work/B.log" | head -3
if [ "$gone" != yes ] || [ "$(state "$job")" != CANCELLED ] \
  || ! "$plain" evaluate --weights "$work/B/checkpoints/$last" --json >/dev/null; then
  tail -20 "$work/B.log"
  fail=1
fi
exit "$fail"
