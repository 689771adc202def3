#!/usr/bin/env bash
# World-size invariance on real MNIST, as a user would check it: the same `dnm train` run in one process and with
# --workers 1, 2 and 4, for the conv model and the mlp preset's encoder; every final-metrics.json must be byte-identical
# (exit 1 otherwise). About a minute a run on 2 cores. Results: docs/BENCHMARKS.md, "World-size invariance".
#   scripts/check-invariance.sh [--workers 1,2,4] [-- extra dnm train flags]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=1,2,4
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
dotnet build src/Dnm.Node/Dnm.Node.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
dnm=src/Dnm.Node/bin/Release/net10.0/dnm
root=$(mktemp -d /tmp/dnm-invariance.XXXXXX)
trap 'rm -rf "$root"' EXIT
base=(--dataset mnist --limit 2048 --map 6x6 --epochs 1 --pretrain-epochs 1 --som-iterations 200 --batch-size 128 --seed 11 --no-metrics "$@")
status=0
for encoder in conv mlp; do
  model=(--encoder conv); [ "$encoder" = mlp ] && model=(--encoder mlp --latent 10)
  reference=
  IFS=, read -ra counts <<<"0,$workers"
  for n in "${counts[@]}"; do
    out="$root/$encoder-$n"; flags=(); [ "$n" = 0 ] || flags=(--workers "$n")
    start=$(date +%s.%N)
    "$dnm" train "${base[@]}" "${model[@]}" "${flags[@]}" --out "$out" >"$out.log" 2>&1 || { echo "$encoder, workers $n: dnm train failed:"; tail -5 "$out.log"; exit 1; }
    seconds=$(echo "$(date +%s.%N) - $start" | bc)
    sum=$(sha256sum "$out/final-metrics.json" | cut -c1-16)
    [ -n "$reference" ] || reference=$sum
    verdict=same; [ "$sum" = "$reference" ] || { verdict=DIFFERENT; status=1; }
    echo "$encoder ${flags[*]:-one process}: sha256 $sum ($verdict) in ${seconds%.*} s: $(tr -d '\n ' <"$out/final-metrics.json")"
  done
done
exit $status
