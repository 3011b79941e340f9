#!/usr/bin/env bash
# Fault injection: start training that checkpoints every 0.1 s, kill -9 it at a random moment,
# and check that the newest checkpoint loads; repeat. Each start resumes with --resume auto, so
# every restart also proves the checkpoint it resumed from was whole.
#
# usage: scripts/kill-test.sh [KILLS] (default 200); CNN_TUI=path/to/binary to choose the binary.
# Prints the counts and exits non-zero if any checkpoint was torn or unloadable.
set -u
kills=${1:-200}
bin=${CNN_TUI:-target/release/cnn-tui}
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release first)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run="$work/run"
loaded=0 torn=0 none=0 failed_resumes=0
for i in $(seq 1 "$kills"); do
  "$bin" train --headless --run-dir "$run" --resume auto --epochs 100000 \
    --set checkpoint.every_seconds=0.1 --set checkpoint.keep_last=2 >/dev/null 2>"$work/err" &
  pid=$!
  # Somewhere between 0.2 and 1.5 s: before, during or after a checkpoint write.
  sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.3f", 0.2 + 1.3 * r / 32767 }')"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rc=$?
  if [ "$rc" -ne 137 ]; then
    failed_resumes=$((failed_resumes + 1))
    echo "start $i exited with $rc before the kill: $(cat "$work/err")" >&2
  fi
  last=$(cat "$run/checkpoints/last" 2>/dev/null || true)
  if [ -z "$last" ]; then
    none=$((none + 1))
    continue
  fi
  if "$bin" evaluate --weights "$run/checkpoints/$last" --json >/dev/null 2>"$work/eval-err"; then
    loaded=$((loaded + 1))
  else
    torn=$((torn + 1))
    echo "kill $i: $(cat "$work/eval-err")" >&2
  fi
done
steps=$(grep -o '"step":[0-9]*' "$run/metrics.jsonl" 2>/dev/null | tail -1 | cut -d: -f2)
echo "kills: $kills, last checkpoint loaded: $loaded, torn or unloadable: $torn, no checkpoint yet: $none, restarts that failed: $failed_resumes, steps reached: ${steps:-0}"
[ "$torn" -eq 0 ] && [ "$failed_resumes" -eq 0 ]
