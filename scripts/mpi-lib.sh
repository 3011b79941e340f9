# Shell functions of scripts/mpi-test.sh and scripts/mpi-slurm-test.sh (sourced).

# The numbers of a run that must not depend on ranks or threads: every batch's and epoch's
# losses and accuracies, and the final test loss with all its digits.
losses() {
  python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    t = e.get("type")
    if t == "batch":
        print("batch", e["step"], repr(e["loss"]), repr(e["accuracy"]))
    elif t == "epoch":
        print("epoch", e["epoch"], repr(e["loss"]), repr(e["accuracy"]), repr(e.get("val_loss")), repr(e.get("val_accuracy")))
    elif t == "finished":
        print("test", repr(e["test_loss"]), repr(e["test_accuracy"]))
PY
}
test_loss() { losses "$1" | awk '$1 == "test" { v = $2 } END { print v }'; }
# The pid of rank $2 of the job training into run directory $1.
rank_pid() {
  for p in $(pgrep -f -- "--run-dir $1"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$p"
      return
    fi
  done
}
# Seconds since $1 (a `date +%s.%N`), to a tenth.
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }
# Whether two safetensors files hold the same tensors and metadata (the header's key order
# varies from one save to the next).
same_weights() {
  python3 - "$1" "$2" <<'PY'
import json, struct, sys
def read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]
sys.exit(0 if read(sys.argv[1]) == read(sys.argv[2]) else 1)
PY
}
# Losses and weights of run directory $1 equal to those of $2: "yes", else what differs.
same_as() {
  local same=yes
  [ -s "$1/metrics.jsonl" ] || { echo "NO (no metrics)"; return; }
  # A resumed run keeps the test line of each earlier start: the last one counts.
  [ "$(losses "$1/metrics.jsonl" | grep -v '^test')" = "$(losses "$2/metrics.jsonl" | grep -v '^test')" ] \
    && [ "$(test_loss "$1/metrics.jsonl")" = "$(test_loss "$2/metrics.jsonl")" ] || same="NO (losses)"
  same_weights "$1/model.safetensors" "$2/model.safetensors" || same="$same NO (weights)"
  echo "$same"
}

