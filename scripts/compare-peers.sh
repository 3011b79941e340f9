#!/usr/bin/env bash
# Side by side in one sitting: cnn-tui against the Keras (TensorFlow) and PyTorch versions of the
# same models (../shared/bench/peers), run alternately per model (TF, cnn-tui, PyTorch, cnn-tui;
# ROUNDS times), then one table of train and inference samples/s with each side's range and the
# ratio to the faster peer, and the CPU stolen and used by other processes during each side's runs.
#
# Usage: scripts/compare-peers.sh [options]
#   --models "A B C"      peer models to run (A seed-logistic, B seed-conv, C mnist-convnet;
#                         D and E, the CIFAR-10 models, need --config D=FILE / E=FILE and --cifar DIR)
#   --config M=FILE       the cnn-tui config for model M (defaults: A, B, C as above)
#   --rounds N            alternations per model (2)
#   --epochs N            peer epochs (3; their train samples/s is the median epoch after the first)
#   --batches N           cnn-tui bench timed steps (300), in --repeats R repetitions (5)
#   --threads N           threads for every side (2)
#   --train-limit N       peers train on the first N samples only (smoke tests)
#   --test-limit N        peers predict on the first N test samples only (smoke tests)
#   --step-bench N        peers' isolated step timing (50; 0 skips it)
#   --venvs DIR           peer virtual environments from setup.sh (/tmp/peer-venvs)
#   --peers DIR           the peer scripts (../shared/bench/peers)
#   --mnist DIR           MNIST IDX files (../shared/data/mnist)
#   --cifar DIR           unpacked CIFAR-10 JPEG folder, for D and E
#   --bin FILE            the cnn-tui binary (target/release/cnn-tui, built if missing)
#   --out DIR             keep every run's JSON and log there (default: a new /tmp/compare-peers.*)
#   --no-tf, --no-torch   leave a peer out
# Smoke test: scripts/compare-peers.sh --rounds 1 --epochs 1 --train-limit 2000 --test-limit 2000 \
#             --step-bench 5 --batches 20
# Run it on a machine otherwise idle; the table says how much CPU others took anyway.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
models="A B C"
rounds=2 epochs=3 batches=300 repeats=5 threads=2 step_bench=50
train_limit=0 test_limit=0
venvs=/tmp/peer-venvs
peers=$root/../shared/bench/peers
mnist=$root/../shared/data/mnist
cifar=""
bin=$root/target/release/cnn-tui
out=""
run_tf=1 run_torch=1
declare -A config=(
  [A]=$root/configs/seed-logistic.toml
  [B]=$root/configs/seed-conv.toml
  [C]=$root/configs/mnist-convnet.toml
)

die() { echo "compare-peers: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case $1 in
    --models) need "$@"; models=$2; shift 2 ;;
    --config) need "$@"; [[ $2 == [A-E]=* ]] || die "--config wants M=FILE with M in A-E, got '$2'"
              config[${2%%=*}]=${2#*=}; shift 2 ;;
    --rounds) need "$@"; rounds=$2; shift 2 ;;
    --epochs) need "$@"; epochs=$2; shift 2 ;;
    --batches) need "$@"; batches=$2; shift 2 ;;
    --repeats) need "$@"; repeats=$2; shift 2 ;;
    --threads) need "$@"; threads=$2; shift 2 ;;
    --train-limit) need "$@"; train_limit=$2; shift 2 ;;
    --test-limit) need "$@"; test_limit=$2; shift 2 ;;
    --step-bench) need "$@"; step_bench=$2; shift 2 ;;
    --venvs) need "$@"; venvs=$2; shift 2 ;;
    --peers) need "$@"; peers=$2; shift 2 ;;
    --mnist) need "$@"; mnist=$2; shift 2 ;;
    --cifar) need "$@"; cifar=$2; shift 2 ;;
    --bin) need "$@"; bin=$2; shift 2 ;;
    --out) need "$@"; out=$2; shift 2 ;;
    --no-tf) run_tf=0; shift ;;
    --no-torch) run_torch=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
for n in rounds epochs batches repeats threads train_limit test_limit step_bench; do
  [[ ${!n} =~ ^[0-9]+$ ]] || die "--${n//_/-} must be a whole number, got '${!n}'"
done
[ "$rounds" -ge 1 ] || die "--rounds must be at least 1"

# Check everything before the first run: a missing piece should not surface an hour in.
[ -x "$bin" ] || (cd "$root" && cargo build --release --quiet) || die "cannot build $bin"
[ -x "$bin" ] || die "$bin: no cnn-tui binary"
[ -d "$mnist" ] || die "$mnist: MNIST directory not found (--mnist)"
[ "$run_tf$run_torch" != 00 ] || die "--no-tf and --no-torch leave nothing to compare with"
[ $run_tf = 0 ] || [ -x "$venvs/tf/bin/python" ] || die "$venvs/tf: no TensorFlow venv; run $peers/setup.sh $venvs"
[ $run_torch = 0 ] || [ -x "$venvs/torch/bin/python" ] || die "$venvs/torch: no PyTorch venv; run $peers/setup.sh $venvs"
for f in bench_tf.py bench_torch.py; do [ -f "$peers/$f" ] || die "$peers/$f not found (--peers)"; done
for m in $models; do
  [[ $m == [A-E] ]] || die "unknown model '$m' (A-E)"
  [ -n "${config[$m]:-}" ] || die "model $m: no cnn-tui config; give --config $m=FILE"
  [ -f "${config[$m]}" ] || die "model $m: ${config[$m]} not found"
  if [[ $m == [DE] ]]; then
    [ -n "$cifar" ] && [ -d "$cifar" ] || die "model $m: give the unpacked CIFAR-10 folder with --cifar DIR"
  fi
done
[ -n "$out" ] || out=$(mktemp -d /tmp/compare-peers.XXXXXX)
mkdir -p "$out"
runs=$out/runs.jsonl
: > "$runs"

# Machine-wide CPU counters (ticks): total, steal, busy (user nice system irq softirq).
cpu_ticks() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $9, $2+$3+$4+$7+$8; exit}' /proc/stat; }

# run SIDE MODEL ROUND CMD...: runs one measurement, appends a JSON line to $runs with its
# result and the steal and busy fractions of all cores' time during it.
run() {
  local side=$1 model=$2 round=$3; shift 3
  local log="$out/$model-$round-$side.log" t0 t1 s0 s1
  read -r t0 s0 b0 < <(cpu_ticks)
  local start=$SECONDS
  echo "  $(date -u +%T) $side model $model round $round" >&2
  if ! "$@" > "$log" 2>&1; then
    echo "compare-peers: $side model $model failed; its output is in $log:" >&2
    tail -5 "$log" >&2
    exit 1
  fi
  read -r t1 s1 b1 < <(cpu_ticks)
  local result
  if [ "$side" = cnn-tui ]; then result=$(tail -1 "$log"); else result=$(grep '^RESULT ' "$log" | tail -1 | cut -c8-); fi
  [ -n "$result" ] || { echo "compare-peers: $side model $model printed no result; see $log" >&2; exit 1; }
  python3 - "$side" "$model" "$round" "$((t1 - t0))" "$((s1 - s0))" "$((b1 - b0))" "$((SECONDS - start))" "$result" >> "$runs" <<'EOF'
import json, sys
side, model, rnd, total, steal, busy, secs, result = sys.argv[1:]
total = max(int(total), 1)
print(json.dumps({"side": side, "model": model, "round": int(rnd), "seconds": int(secs),
                  "steal": int(steal) / total, "busy": int(busy) / total,
                  "result": json.loads(result)}))
EOF
}

peer_args=(--epochs "$epochs" --step-bench "$step_bench")
[ "$train_limit" = 0 ] || peer_args+=(--train-limit "$train_limit")
[ "$test_limit" = 0 ] || peer_args+=(--test-limit "$test_limit")
export MNIST_DIR=$mnist
[ -z "$cifar" ] || export CIFAR_DIR=$cifar

echo "compare-peers: models $models, $rounds round(s), $threads threads; results in $out" >&2
read -r sit_t0 sit_s0 _ < <(cpu_ticks)
for m in $models; do
  data=$mnist
  [[ $m != [DE] ]] || data=$cifar
  ours=("$bin" bench --config "${config[$m]}" --data "$data" --batches "$batches"
        --repeats "$repeats" --threads "$threads" --json)
  for r in $(seq 1 "$rounds"); do
    [ $run_tf = 0 ] || run tf "$m" "$r" "$venvs/tf/bin/python" "$peers/bench_tf.py" --model "$m" \
      --intra "$threads" "${peer_args[@]}"
    run cnn-tui "$m" "$r" "${ours[@]}"
    [ $run_torch = 0 ] || run torch "$m" "$r" "$venvs/torch/bin/python" "$peers/bench_torch.py" \
      --model "$m" --threads "$threads" "${peer_args[@]}"
    run cnn-tui "$m" "$r" "${ours[@]}"
  done
done
read -r sit_t1 sit_s1 _ < <(cpu_ticks)

python3 - "$runs" "$((sit_t1 - sit_t0))" "$((sit_s1 - sit_s0))" "$train_limit" "$test_limit" <<'EOF' | tee "$out/table.md"
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
total, steal = max(int(sys.argv[2]), 1), int(sys.argv[3])
train_limit, test_limit = int(sys.argv[4]), int(sys.argv[5])
names = {"A": "seed-logistic", "B": "seed-conv", "C": "mnist-convnet", "D": "cifar D", "E": "cifar E"}
sides = [s for s in ("cnn-tui", "tf", "torch") if any(r["side"] == s for r in runs)]
label = {"cnn-tui": "cnn-tui", "tf": "TensorFlow", "torch": "PyTorch"}
versions = {r["side"]: r["result"].get("framework", "") for r in runs if r["side"] != "cnn-tui"}

def fmt(x):
    if x >= 1e6: return f"{x / 1e6:.2f}M"
    if x >= 1e4: return f"{x / 1e3:.0f}k"
    if x >= 1e3: return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"

def span(v):
    if not v: return ""
    lo, hi = min(v), max(v)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}-{fmt(hi)}"

key = {"train": ("train_samples_per_second", "train_samples_per_s"),
       "inference": ("infer_samples_per_second", "infer_samples_per_s")}
# The README's performance table: one row per model and measure, each side's range, and the
# ratio's range from the least to the most favourable pairing with the faster peer (by median).
print(f"| model | " + " | ".join(label[s] + (f" {versions[s]}" if s in versions else "") for s in sides)
      + " | cnn-tui vs the faster peer |")
print("|---" * (len(sides) + 2) + "|")
for m in dict.fromkeys(r["model"] for r in runs):
    for what, (ours, theirs) in key.items():
        vals = {s: [r["result"][ours if s == "cnn-tui" else theirs] for r in runs
                    if r["model"] == m and r["side"] == s] for s in sides}
        peers = [s for s in sides if s != "cnn-tui" and vals[s]]
        cells = [span(vals[s]) for s in sides]
        if peers and vals["cnn-tui"]:
            best = max(peers, key=lambda s: statistics.median(vals[s]))
            lo = min(vals["cnn-tui"]) / max(vals[best])
            hi = max(vals["cnn-tui"]) / min(vals[best])
            med = statistics.median(vals["cnn-tui"]) / statistics.median(vals[best])
            ratio = f"{lo:.1f}x" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}-{hi:.1f}x"
            ratio += f" (median {med:.2f}x, vs {label[best]})" if len(peers) > 1 else ""
        else:
            ratio = "-"
        cells = [c or "-" for c in cells]
        print(f"| {names.get(m, m)}, {what} samples/s | " + " | ".join(cells) + f" | {ratio} |")
print()
print("CPU during each side's runs, as fractions of all cores' time (from /proc/stat):")
for s in sides:
    rs = [r for r in runs if r["side"] == s]
    st = [100 * r["steal"] for r in rs]
    print(f"- {label[s]}: steal {min(st):.1f}-{max(st):.1f}% over {len(rs)} run(s) ({sum(r['seconds'] for r in rs)} s)")
ours = [r["result"] for r in runs if r["side"] == "cnn-tui"]
oth = [100 * c["other_processes"] for c in (o.get("cpu") for o in ours) if c]
if oth:
    print(f"- other processes during cnn-tui's measurements (its bench's own count): {min(oth):.1f}-{max(oth):.1f}%")
for s in ("tf", "torch"):
    fr = [f for r in runs if r["side"] == s for f in r["result"].get("epoch_other_core_frac", [])[1:]]
    if fr:
        print(f"- other processes during {label[s]}'s timed epochs (cpuwatch, in cores): {min(fr):.2f}-{max(fr):.2f}")
print(f"- the whole sitting: steal {100 * steal / total:.1f}% of all cores' time")
warn = sorted({w for o in ours for w in o.get("warnings", [])})
for w in warn:
    print(f"- cnn-tui bench: {w}")
if train_limit or test_limit:
    print(f"- smoke settings: peers --train-limit {train_limit} --test-limit {test_limit}; not a measurement to publish")
EOF
echo "compare-peers: every run's output and JSON are in $out" >&2
