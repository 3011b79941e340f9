#!/usr/bin/env bash
# The shipped job scripts (examples/slurm/*.sbatch, unchanged) under the one-node Slurm of
# scripts/slurm-up.sh, submitted by an ordinary user with small configs and the bundled data:
#   A  train.sbatch with --time=2 --signal=B:USR1@30: the warning comes mid-run, the job
#      requeues itself, resumes and ends COMPLETED with a complete run directory;
#   B  train.sbatch, then a plain `scancel`: CANCELLED, checkpoint and summary kept, and it
#      never comes back;
#   C  sweep-array.sbatch as a two-task job array;
#   E  train.sbatch, then `scontrol requeue`: Slurm requeues it (the script does not as well),
#      it resumes and completes;
#   D  `ctl save` and `runs` against A from another shell while it runs.
# Prints every change of each job's state (from `scontrol show job`), then the run
# directories' summaries. Needs root (it creates the user and runs commands as that user).
# On failure the submit directory stays in /tmp/cnn-tui-slurm-test.*; SLURM_TEST_KEEP=1 keeps
# it on success too.
#
#   sudo scripts/slurm-up.sh && sudo scripts/slurm-test.sh; sudo scripts/slurm-down.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
BIN=${CNN_TUI_BIN:-$REPO/target/release/cnn-tui}
TEST_USER=${SLURM_TEST_USER:-cnn-tui-slurm}
LIMIT=${SLURM_TEST_LIMIT:-400} # seconds for all jobs to reach their end states
# Seconds of training the time-limit job needs at one thread, as `bench` estimates them (here
# runs came out 1.15 to 1.7 times faster than that): the warning comes 60 to 90 s into each
# start, so 180 takes two starts or three; 300 takes three.
WORK_SECONDS=${SLURM_TEST_WORK_SECONDS:-180}
T0=$(date +%s)

[ "$(id -u)" = 0 ] || { echo "slurm-test.sh: needs root (it creates a user)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "slurm-test.sh: $BIN not built (cargo build --release)" >&2; exit 1; }
sinfo -h -o %T | grep -q idle || { echo "slurm-test.sh: no idle node: run scripts/slurm-up.sh" >&2; exit 1; }

fail() { echo "FAIL: $*" >&2; exit 1; }
say() { printf '[%3ds] %s\n' $(($(date +%s) - T0)) "$*"; }

id -u "$TEST_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$TEST_USER"
HOME_DIR=$(getent passwd "$TEST_USER" | cut -d: -f6)

# What a site provides: cnn-tui on PATH on the node, the data, a submit directory of the user's.
WORK=$(mktemp -d /tmp/cnn-tui-slurm-test.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/bin" "$WORK/data" "$WORK/submit/configs"
cp "$BIN" "$WORK/bin/cnn-tui"
cp assets/*-ubyte.gz "$WORK/data/"
SUBMIT=$WORK/submit

# Runs a command as the user in the submit directory, with a login-like environment: what
# sbatch exports to the job (--export=ALL) is this, plus the variables given.
as_user() {
  (cd "$SUBMIT" && runuser -u "$TEST_USER" -- env -i HOME="$HOME_DIR" USER="$TEST_USER" \
    LOGNAME="$TEST_USER" SHELL=/bin/bash LANG=C.UTF-8 PATH="$WORK/bin:/usr/bin:/bin" "$@")
}
# sbatch reads the job script as the user: give the shipped file where they can read it, or
# its bytes on stdin where the checkout is private.
submit() { # SCRIPT SBATCH-ARGS... (environment variables before: `env K=V`)
  local script=$REPO/examples/slurm/$1
  shift
  if as_user test -r "$script"; then
    as_user "$@" "$script"
  else
    as_user "$@" <"$script"
  fi
}

# The time-limit job's work: WORK_SECONDS on this machine at one thread (measured below), so
# that the warning comes mid-run and a later start finishes it.
cat >"$SUBMIT/configs/ci-long.toml" <<'EOF'
name = "ci-long"
[model]
layers = [
  { type = "conv2d", filters = 16, kernel_size = 3, activation = "relu" },
  { type = "maxpool2d", pool_size = 2 },
  { type = "conv2d", filters = 32, kernel_size = 3, activation = "relu" },
  { type = "maxpool2d", pool_size = 2 },
  { type = "flatten" },
  { type = "dense", units = 10 },
]
[optimizer]
type = "sgd"
lr = 0.01
momentum = 0.9
[training]
epochs = 1
batch_size = 128
seed = 7
validation_split = 0.1
EOF
# The sweep's: its grid sets lr to 0.1 and batch_size to 64 or 128; plain SGD stays finite.
cat >"$SUBMIT/configs/ci-sweep.toml" <<'EOF'
name = "ci-sweep"
[model]
layers = [
  { type = "conv2d", filters = 4, kernel_size = 3, activation = "relu" },
  { type = "maxpool2d", pool_size = 2 },
  { type = "flatten" },
  { type = "dense", units = 10 },
]
[optimizer]
type = "sgd"
lr = 0.1
[training]
epochs = 1
batch_size = 128
seed = 7
EOF
chown -R "$TEST_USER" "$SUBMIT"
sps=$(as_user cnn-tui bench --config configs/ci-long.toml --data "$WORK/data" --batches 30 \
  --threads 1 --json | sed -n 's/.*"train_samples_per_second": *\([0-9.]*\).*/\1/p')
[ -n "$sps" ] || fail "cnn-tui bench printed no train_samples_per_second"
EPOCHS=$(awk -v s="$sps" -v w="$WORK_SECONDS" 'BEGIN { e = int(w * s / 9000 + 0.5); print (e < 2 ? 2 : e) }')
say "ci-long trains $sps samples/s at one thread here: $EPOCHS epochs of 9000 samples"

# train.sbatch passes no --epochs: the config file holds them. The requeued job trains a
# sixth as long (the model's other numbers are the same).
sed "s/^epochs = 1$/epochs = $(((EPOCHS + 5) / 6))/; s/ci-long/ci-short/" \
  "$SUBMIT/configs/ci-long.toml" >"$SUBMIT/configs/ci-short.toml"
sed -i "s/^epochs = 1$/epochs = $EPOCHS/" "$SUBMIT/configs/ci-long.toml"
chown -R "$TEST_USER" "$SUBMIT/configs"

COMMON=(--cpus-per-task=1 --mem=500M)
A=$(submit train.sbatch env CONFIG=configs/ci-long.toml DATA="$WORK/data" RUN_DIR=runs/time-limit \
  sbatch --parsable "${COMMON[@]}" --time=2 --signal=B:USR1@30 --job-name=ci-time-limit)
B=$(submit train.sbatch env CONFIG=configs/ci-long.toml DATA="$WORK/data" RUN_DIR=runs/cancelled \
  sbatch --parsable "${COMMON[@]}" --time=10 --job-name=ci-scancel)
C=$(submit sweep-array.sbatch env CONFIG=configs/ci-sweep.toml DATA="$WORK/data" SWEEP_DIR=runs/sweep \
  sbatch --parsable "${COMMON[@]}" --array=0-1 --job-name=ci-array)
E=$(submit train.sbatch env CONFIG=configs/ci-short.toml DATA="$WORK/data" RUN_DIR=runs/requeued \
  sbatch --parsable "${COMMON[@]}" --time=10 --job-name=ci-requeue)
say "submitted: $A (time limit), $B (scancel), ${C}_[0-1] (array), $E (scontrol requeue)"
# Whatever goes wrong below, no job is left running.
trap 'scancel "$A" "$B" "$C" "$E" 2>/dev/null || true' EXIT

JOBS=("$A" "$B" "${C}_0" "${C}_1" "$E")
declare -A NAME=([$A]="time limit" [$B]=scancel [${C}_0]="array 0" [${C}_1]="array 1" [$E]="scontrol requeue")
declare -A LAST STATE RESTARTS
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
poll() { # updates STATE and RESTARTS, prints each change
  local j line key
  for j in "${JOBS[@]}"; do
    line=$(scontrol show job -o "$j" 2>/dev/null | head -n 1) || continue
    STATE[$j]=$(field JobState "$line")
    RESTARTS[$j]=$(field Restarts "$line")
    key="${STATE[$j]} $(field Reason "$line") ${RESTARTS[$j]}"
    if [ "$key" != "${LAST[$j]:-}" ]; then
      LAST[$j]=$key
      say "job $j (${NAME[$j]}): JobState=${STATE[$j]} Reason=$(field Reason "$line") Restarts=${RESTARTS[$j]} RunTime=$(field RunTime "$line") ExitCode=$(field ExitCode "$line")"
    fi
  done
}
trained() { grep -q '"type":"batch"' "$SUBMIT/$1/metrics.jsonl" 2>/dev/null; }
ended() { case ${STATE[$1]:-} in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) true ;; *) false ;; esac; }

SAW_REQUEUE=0 CANCELLED_AT=0 STEERED=0 REQUEUED=0
while :; do
  poll
  if [ "${STATE[$A]}" = PENDING ] && [ "${RESTARTS[$A]:-0}" -ge 1 ]; then SAW_REQUEUE=1; fi
  # B: a plain scancel by its owner once it trains.
  if [ "$CANCELLED_AT" = 0 ] && [ "${STATE[$B]}" = RUNNING ] && trained runs/cancelled; then
    say "scancel $B (as $TEST_USER)"
    as_user scancel "$B"
    CANCELLED_AT=$(date +%s)
  fi
  # E: requeued by its owner once it trains; Slurm sends SIGTERM and requeues it.
  if [ "$REQUEUED" = 0 ] && [ "${STATE[$E]}" = RUNNING ] && trained runs/requeued; then
    say "scontrol requeue $E (as $TEST_USER)"
    as_user scontrol requeue "$E"
    REQUEUED=1
  fi
  # D: from another shell, while A's first start trains.
  if [ "$STEERED" = 0 ] && [ "${STATE[$A]}" = RUNNING ] && trained runs/time-limit; then
    say "cnn-tui ctl runs/time-limit save (as $TEST_USER, another shell)"
    as_user cnn-tui ctl runs/time-limit save || fail "ctl save against the running job"
    say "cnn-tui runs runs (as $TEST_USER)"
    as_user cnn-tui runs runs || fail "runs"
    STEERED=1
  fi
  if ended "$A" && ended "$B" && ended "${C}_0" && ended "${C}_1" && ended "$E" \
    && [ -e "$SUBMIT/runs/cancelled/summary.json" ] \
    && [ $(($(date +%s) - CANCELLED_AT)) -ge 30 ]; then
    break
  fi
  [ $(($(date +%s) - T0)) -lt "$LIMIT" ] || fail "jobs not done within $LIMIT s"
  sleep 1
done
say "all jobs ended"

show() { # LOG-FILE RUN-DIR: the job's log and the run's summary
  echo "--- $1"
  tail -n 6 "$SUBMIT/$1"
  echo "--- $2/summary.json"
  cat "$SUBMIT/$2/summary.json"
  echo
}
show "cnn-tui-$A.log" runs/time-limit
show "cnn-tui-$B.log" runs/cancelled
show "cnn-tui-sweep-${C}_0.log" runs/sweep/000-lr=0.1-batch_size=64
show "cnn-tui-sweep-${C}_1.log" runs/sweep/001-lr=0.1-batch_size=128
show "cnn-tui-$E.log" runs/requeued
as_user cnn-tui runs runs

# A: requeued by the time-limit warning, resumed, completed, with a complete run directory.
[ "${STATE[$A]}" = COMPLETED ] || fail "job $A ended ${STATE[$A]}, not COMPLETED"
[ "$SAW_REQUEUE" = 1 ] || fail "job $A was never PENDING with Restarts>=1"
grep -q "time limit near, checkpoint saved; requeueing" "$SUBMIT/cnn-tui-$A.log" || fail "job $A's log: no requeue"
grep -q '"status": "finished"' "$SUBMIT/runs/time-limit/summary.json" || fail "job $A: run not finished"
grep -q '"type":"restart"' "$SUBMIT/runs/time-limit/metrics.jsonl" || fail "job $A: never resumed"
grep -q '"command":"save"' "$SUBMIT/runs/time-limit/metrics.jsonl" || fail "job $A: ctl save not acknowledged"
for f in config.toml metrics.jsonl train.log model.safetensors checkpoints/last plots/loss.png; do
  [ -s "$SUBMIT/runs/time-limit/$f" ] || fail "job $A: run directory lacks $f"
done
# B: cancelled for good, with its checkpoint and summary.
[ "${STATE[$B]}" = CANCELLED ] || fail "job $B ended ${STATE[$B]}, not CANCELLED"
[ "${RESTARTS[$B]}" = 0 ] || fail "job $B was requeued after scancel"
grep -q '"interrupted_by": "SIGTERM"' "$SUBMIT/runs/cancelled/summary.json" || fail "job $B: summary does not say SIGTERM"
[ -s "$SUBMIT/runs/cancelled/checkpoints/$(cat "$SUBMIT/runs/cancelled/checkpoints/last")" ] \
  || fail "job $B: no checkpoint"
if grep -q requeueing "$SUBMIT/cnn-tui-$B.log"; then fail "job $B's script requeued"; fi
# E: requeued by Slurm alone, resumed, completed.
[ "${STATE[$E]}" = COMPLETED ] || fail "job $E ended ${STATE[$E]}, not COMPLETED"
[ "${RESTARTS[$E]}" = 1 ] || fail "job $E restarted ${RESTARTS[$E]} times, not once"
grep -q "interrupted (cancelled or requeued by Slurm)" "$SUBMIT/cnn-tui-$E.log" || fail "job $E's log"
if grep -q requeueing "$SUBMIT/cnn-tui-$E.log"; then fail "job $E's script requeued as well"; fi
grep -q '"starts": 2' "$SUBMIT/runs/requeued/summary.json" || fail "job $E: not two starts"
grep -q '"status": "finished"' "$SUBMIT/runs/requeued/summary.json" || fail "job $E: not finished"
# C: both tasks trained their combination.
for t in 0 1; do
  [ "${STATE[${C}_$t]}" = COMPLETED ] || fail "array task ${C}_$t ended ${STATE[${C}_$t]}"
done
[ "$(grep -l '"status": "finished"' "$SUBMIT"/runs/sweep/*/summary.json | wc -l)" = 2 ] \
  || fail "the array's two run directories are not both finished"

if [ "${SLURM_TEST_KEEP:-0}" = 1 ]; then
  say "slurm test passed in $(($(date +%s) - T0)) s; $WORK kept"
else
  rm -rf "$WORK"
  say "slurm test passed in $(($(date +%s) - T0)) s"
fi
