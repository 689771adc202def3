#!/usr/bin/env bash
# Loader benchmark: decoded images/s of Dnm's training loader (Dnm.Bench loader: the dataset opened as `dnm train`
# opens it, batches of 256 in the epoch order through BatchPrefetcher) against the PyTorch peer (scripts/peer-loader.py:
# tarfile + PIL over the shards, torchvision ImageFolder over the folder, DataLoader with 2 workers), one epoch each, on
# the same synthetic 64x64 RGB JPEG images written as WebDataset shards and as an image folder (scripts/make-wds-shards.py).
# Runs are interleaved (dnm shards, peer shards, dnm folder, peer folder) for N rounds, since the machine may be shared;
# the load average before each run is printed. Prints the medians, the ratios and the CPU time per image (which does not
# depend on the load). Results: docs/BENCHMARKS.md, "Data loading".
#   scripts/bench-loader.sh [--rounds 3] [--images 20000] [--size 64] [--data /tmp/dnm-loaderbench]
#                           [--augment-rotation 0] [--augment-shift 0]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 images=20000 size=64 data=${TMPDIR:-/tmp}/dnm-loaderbench rotation=0 shift_=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --augment-rotation) rotation=$2; shift 2 ;;
    --augment-shift) shift_=$2; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
py=/usr/bin/python3
if ! "$py" -c 'import torch, torchvision, PIL' 2>/dev/null; then
  echo "installing Debian's python3-torch, python3-torchvision and python3-pil for the peer" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-torchvision python3-pil >/dev/null
fi

dotnet build tools/Dnm.Bench/Dnm.Bench.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
bench=tools/Dnm.Bench/bin/Release/net10.0/Dnm.Bench

# The data, made once per set of arguments (the same arguments write the same bytes).
made="$data/made-with"
want="--images $images --size $size --channels 3 --format jpg --seed 1"
if [ "$(cat "$made" 2>/dev/null)" != "$want" ]; then
  rm -rf "$data" && mkdir -p "$data"
  # shellcheck disable=SC2086 # $want is a list of arguments
  "$py" scripts/make-wds-shards.py --out "$data/shards" --folder "$data/folder" --per-shard 1000 --quiet $want
  echo "$want" > "$made"
fi

field() { sed -n "s|.*[[:space:]]$1=\([^[:space:]]*\).*|\1|p" <<<" $2"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
augment=(--augment-rotation "$rotation" --augment-shift "$shift_")

errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
declare -A rate cpu rss wrss
run() { # name, command...: runs it, prints its line, keeps images/s, CPU time per image and peak RSS
  local name=$1 l out; shift
  l=$(load)
  if ! out=$("$@" 2>"$errors" | grep '^impl='); then
    echo "$name failed: $*" >&2; cat "$errors" >&2; exit 1
  fi
  printf 'round %d %-11s load [%s]  %s\n' "$r" "$name" "$l" "$out"
  rate[$name]+="$(field images/s "$out") " cpu[$name]+="$(field cpu_us/img "$out") "
  rss[$name]+="$(field peakRSS_MB "$out") " wrss[$name]+="$(field workerPeakRSS_MB "$out") "
}
for ((r = 1; r <= rounds; r++)); do
  run "dnm shards" "$bench" loader --dataset "shards:$data/shards" --size "$size" --channels 3 "${augment[@]}"
  run "peer shards" "$py" scripts/peer-loader.py shards "$data/shards" "${augment[@]}"
  run "dnm folder" "$bench" loader --dataset "folder:$data/folder" --size "$size" --channels 3 "${augment[@]}"
  run "peer folder" "$py" scripts/peer-loader.py folder "$data/folder" "${augment[@]}"
done

m() { tr ' ' '\n' <<<"${1% }" | median; }
echo
echo "$images ${size}x${size} RGB JPEG images, one epoch, batch 256, $rounds interleaved rounds, medians (augment rotation $rotation, shift $shift_)"
# Peak RSS: the process; the peer's 2 DataLoader workers are processes of their own, each up to "worker MB" more.
printf '%-11s %10s %12s %16s %10s\n' "loader" "images/s" "cpu us/img" "peak RSS MB" "worker MB"
for name in "dnm shards" "peer shards" "dnm folder" "peer folder"; do
  w=$(m "${wrss[$name]}")
  printf '%-11s %10s %12s %16s %10s\n' "$name" "$(m "${rate[$name]}")" "$(m "${cpu[$name]}")" "$(m "${rss[$name]}")" "${w/nan/-}"
done
for kind in shards folder; do
  d=$(m "${rate[dnm $kind]}") p=$(m "${rate[peer $kind]}")
  echo "ratio dnm/peer, $kind: $(awk -v a="$d" -v b="$p" 'BEGIN {printf "%.2f", a / b}') (target >= 1.5)"
done
