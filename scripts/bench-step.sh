#!/usr/bin/env bash
# Training-step benchmark: Dnm's single-process joint step against the PyTorch peer
# (../shared/peers/run-pytorch-peer.sh), same model, batch 256, same thread count, real MNIST,
# 5 warm-up + 30 timed steps each. Builds Release once, then interleaves peer, dnm, peer, dnm, ...
# for N rounds (the machine may be shared: interleaving keeps the ratio honest) and prints both
# medians and the ratio. Results: docs/BENCHMARKS.md, "Training step".
#   scripts/bench-step.sh [--rounds 3] [--threads 2] [--no-peer] [-- extra Dnm.Bench step args]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 threads=2 peer=1 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --no-peer) peer=0; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
peer_script=${DNM_PEER:-../shared/peers/run-pytorch-peer.sh}
if [ "$peer" = 1 ] && [ ! -x "$peer_script" ]; then
  echo "peer script $peer_script not found (set DNM_PEER, or pass --no-peer)" >&2; exit 2
fi

dotnet build tools/Dnm.Bench/Dnm.Bench.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
bench=tools/Dnm.Bench/bin/Release/net10.0/Dnm.Bench
images=$("$bench" mnist-path)

field() { sed -n "s|.*[[:space:]]$1=\([^[:space:]]*\).*|\1|p" <<<" $2"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

dnm_rates=() peer_rates=() dnm_gflops=() dnm_rss=() peer_rss=()
for ((r = 1; r <= rounds; r++)); do
  if [ "$peer" = 1 ]; then
    l=$(load)
    out=$("$peer_script" "$threads" "$images" 2>/dev/null | grep '^impl=')
    echo "round $r peer  load [$l]  $out"
    peer_rates+=("$(field samples/s "$out")"); peer_rss+=("$(field peakRSS_MB "$out")")
  fi
  l=$(load)
  out=$("$bench" step --threads "$threads" "${extra[@]}" 2>/dev/null | grep '^impl=')
  echo "round $r dnm   load [$l]  $out"
  dnm_rates+=("$(field samples/s "$out")"); dnm_gflops+=("$(field GFLOP/s "$out")"); dnm_rss+=("$(field peakRSS_MB "$out")")
done

d=$(printf '%s\n' "${dnm_rates[@]}" | median)
echo "dnm:  median $d samples/s, $(printf '%s\n' "${dnm_gflops[@]}" | median) GFLOP/s (35.3 MFLOP/sample for the conv model, 19.9 with --mlp; the 2-thread GEMM ceiling was ~123 on the AVX-512 VM of 2026-11-23), peak RSS $(printf '%s\n' "${dnm_rss[@]}" | median) MB"
if [ "$peer" = 1 ]; then
  p=$(printf '%s\n' "${peer_rates[@]}" | median)
  echo "peer: median $p samples/s, peak RSS $(printf '%s\n' "${peer_rss[@]}" | median) MB"
  echo "ratio dnm/peer: $(awk -v a="$d" -v b="$p" 'BEGIN {printf "%.2f", a / b}') (target >= 1.0)"
fi
