#!/usr/bin/env bash
# Data-parallel training over MPI, checked against one process of the plain build, on a small
# synthetic MNIST-shaped data set (2048 training and 512 test images it writes itself) and
# configs/mnist-convnet.toml:
#   1. one epoch on 1, 2 and 4 ranks (mpirun; 4 oversubscribed) x 1 and 2 threads: every loss
#      and accuracy in metrics.jsonl, the test loss and the final weights bit for bit the plain
#      build's;
#   2. a resume on another rank count: epoch 1 on 2 ranks, then --resume auto to epoch 2 on 4
#      ranks, bit for bit 2 epochs in one plain process;
#   3. a rank killed (kill -9) and a rank stopped (SIGSTOP, a hang) each end the whole job
#      within 30 s; the last checkpoint is intact: the killed job's is resumed by the plain
#      build on one process and ends bit for bit as the 2-epoch plain run.
#
# usage: scripts/mpi-test.sh PLAIN_BINARY MPI_BINARY (cargo build --release [--features mpi]).
# Needs mpirun (Debian: openmpi-bin) and python3. Prints a table; exits non-zero on any
# mismatch. MPI_TEST_KEEP=1 keeps its scratch directory.
set -u
plain=$(realpath "${1:?plain binary}")
mpi=$(realpath "${2:?MPI binary}")
cd "$(dirname "$0")/.."
. scripts/mpi-lib.sh
work=$(mktemp -d)
[ "${MPI_TEST_KEEP:-0}" = 1 ] && echo "scratch: $work" || trap 'rm -rf "$work"' EXIT
fail=0
# As root Open MPI wants --allow-run-as-root; --bind-to none leaves each rank its threads.
mpirun_=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && mpirun_+=(--allow-run-as-root)
# A hung rank ends the job after the watchdog's limit: 10 s here (20 s by default).
export CNN_TUI_MPI_WATCHDOG=${CNN_TUI_MPI_WATCHDOG:-10}

python3 scripts/synthetic-idx.py "$work/data" || exit 1
common=(train --headless --no-plots --config configs/mnist-convnet.toml --data "$work/data"
  --set training.log_every_batches=1)

echo "== bit identity: mnist-convnet, 1 epoch of 1843 samples (batch 128), then the test set"
"$plain" "${common[@]}" --epochs 1 --threads 2 --run-dir "$work/plain" >"$work/plain.log" 2>&1 \
  || { cat "$work/plain.log"; exit 1; }
[ "$(losses "$work/plain/metrics.jsonl" | grep -c '^batch')" -gt 0 ] \
  || { echo "the plain run recorded no batch losses"; exit 1; }
printf '%-6s %-8s %-22s %-14s %s\n' ranks threads "test loss" "same as plain" seconds
printf '%-6s %-8s %-22s %-14s %s\n' plain 2 "$(test_loss "$work/plain/metrics.jsonl")" - -
for n in 1 2 4; do
  for t in 1 2; do
    dir="$work/r$n-t$t"
    start=$(date +%s.%N)
    "${mpirun_[@]}" -n "$n" "$mpi" "${common[@]}" --epochs 1 --threads "$t" --run-dir "$dir" \
      >"$dir.log" 2>&1 || { cat "$dir.log"; fail=1; continue; }
    secs=$(since "$start")
    same=$(same_as "$dir" "$work/plain")
    [ "$same" = yes ] || fail=1
    printf '%-6s %-8s %-22s %-14s %s\n' "$n" "$t" "$(test_loss "$dir/metrics.jsonl")" "$same" "$secs"
  done
done
grep -h "MPI ranks\|MPI:" "$work/r2-t1.log"
# Rank 0 alone writes: the run directory holds the same files as one process's.
names() { (cd "$1" && find . | sed 's/[0-9T:-]\{8,\}/<time>/g' | sort); }
if [ "$(names "$work/r4-t1")" != "$(names "$work/plain")" ]; then
  echo "4 ranks wrote other files than one process:"; diff <(names "$work/plain") <(names "$work/r4-t1")
  fail=1
fi

echo "== resume on another rank count: epoch 1 on 2 ranks, epoch 2 on 4 ranks"
"$plain" "${common[@]}" --epochs 2 --threads 2 --run-dir "$work/plain2" >"$work/plain2.log" 2>&1 \
  || { cat "$work/plain2.log"; exit 1; }
"${mpirun_[@]}" -n 2 "$mpi" "${common[@]}" --epochs 1 --threads 1 --run-dir "$work/resumed" \
  --resume auto >"$work/resumed1.log" 2>&1 || { cat "$work/resumed1.log"; fail=1; }
"${mpirun_[@]}" -n 4 "$mpi" "${common[@]}" --epochs 2 --threads 1 --run-dir "$work/resumed" \
  --resume auto >"$work/resumed2.log" 2>&1 || { cat "$work/resumed2.log"; fail=1; }
grep -h "resumed from" "$work/resumed2.log"
same=$(same_as "$work/resumed" "$work/plain2")
echo "2 epochs plain: test loss $(test_loss "$work/plain2/metrics.jsonl"); 1 epoch on 2 ranks + 1 on 4 ranks: $(test_loss "$work/resumed/metrics.jsonl"); same: $same"
[ "$same" = yes ] || fail=1

echo "== a rank killed (kill -9) or stopped (SIGSTOP) ends the job within 30 s"
# Long enough to be killed while it trains.
"$plain" "${common[@]}" --epochs 8 --threads 2 --run-dir "$work/plain8" >"$work/plain8.log" 2>&1 \
  || { cat "$work/plain8.log"; exit 1; }
for how in KILL STOP; do
  dir="$work/kill-$how"
  "${mpirun_[@]}" -n 2 "$mpi" "${common[@]}" --epochs 8 --threads 1 --run-dir "$dir" \
    --set checkpoint.every_seconds=1 >"$dir.log" 2>&1 &
  job=$!
  # Until the job trains: rank 0 writes its first checkpoint.
  for _ in $(seq 1 300); do
    [ -s "$dir/checkpoints/last" ] && break
    sleep 0.1
  done
  rank1=$(rank_pid "$dir" 1)
  if [ -z "$rank1" ]; then
    echo "rank 1 not found"; cat "$dir.log"; kill "$job"; fail=1; continue
  fi
  start=$(date +%s.%N)
  kill -"$how" "$rank1"
  ended=no
  for _ in $(seq 1 300); do
    kill -0 "$job" 2>/dev/null || { ended=yes; break; }
    sleep 0.1
  done
  secs=$(since "$start")
  if [ "$ended" = no ]; then
    echo "kill -$how rank 1: the job still runs after 30 s"
    tail -5 "$dir.log"
    for r in 0 1; do p=$(rank_pid "$dir" "$r"); [ -n "$p" ] && kill -KILL "$p"; done
    kill -KILL "$job" 2>/dev/null
    fail=1
    continue
  fi
  wait "$job"
  rc=$?
  last=$(cat "$dir/checkpoints/last")
  printf 'kill -%s rank 1: the job ended %s s later (mpirun exit %s); last checkpoint %s\n' \
    "$how" "$secs" "$rc" "$last"
  [ "$rc" != 0 ] || { echo "mpirun exited 0 after a rank died"; fail=1; }
  grep -h "rank .*MPI_Abort" "$dir.log" | head -2
  if [ "$how" = KILL ]; then
    # The checkpoint continues on one process of the plain build, bit for bit.
    "$plain" "${common[@]}" --epochs 8 --threads 2 --run-dir "$dir" --resume auto \
      >"$dir.resume.log" 2>&1 || { cat "$dir.resume.log"; fail=1; }
    same=$(same_as "$dir" "$work/plain8")
    echo "resumed by the plain build on 1 process: $(grep -h 'resumed from' "$dir.resume.log" | sed "s|$work/||"); same as 8 epochs plain: $same"
    [ "$same" = yes ] || fail=1
  else
    "$plain" evaluate --weights "$dir/checkpoints/$last" --json >/dev/null \
      || { echo "$last does not load"; fail=1; }
  fi
done
exit "$fail"
