#!/usr/bin/env bash
# Cluster benchmark with separate OS processes: one `dnm node --role coordinator` and N `dnm node --role worker`
# processes on this machine (loopback, shared-memory data plane), for each N given. Prints the coordinator's own
# summary line per N: the mean distributed step, its all-reduce time and the part of it after the slowest rank's
# contribution arrived (the communication share the scaling model in docs/cluster.md uses). Results:
# docs/BENCHMARKS.md, "Cluster".
#   scripts/bench-nodes.sh [--workers 2,4,8] [--mlp] [-- extra dnm training flags]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=2,4,8 model=(--encoder conv)
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=$2; shift 2 ;;
    --mlp) model=(--encoder mlp --latent 10); shift ;;
    --) shift; break ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
dotnet build src/Dnm.Node/Dnm.Node.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
dnm=src/Dnm.Node/bin/Release/net10.0/dnm
root=$(mktemp -d /tmp/dnm-bench-nodes.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$root"; }
trap cleanup EXIT
# Micro-batches of 32 (8 per batch of 256), so that up to 8 workers all get work; one torch thread a worker.
training=(--dataset mnist --limit 4096 --batch-size 256 --micro-batch 32 --pretrain-epochs 1 --epochs 1 --som-iterations 100
          --threads 1 --device cpu --eval-every 0 "${model[@]}" "$@")
port=$((20000 + RANDOM % 20000))
IFS=, read -ra counts <<<"$workers"
for n in "${counts[@]}"; do
  out="$root/w$n"; mkdir -p "$out"
  pids=()
  "$dnm" node --role coordinator --host 127.0.0.1 --port "$port" --min-workers "$n" --no-metrics --out "$out/run" "${training[@]}" \
    >"$out/coordinator.log" 2>&1 &
  coordinator=$!; pids+=("$coordinator")
  for ((i = 0; i < n; i++)); do
    "$dnm" node --role worker --seeds "127.0.0.1:$port" --host 127.0.0.1 --port 0 --no-metrics >"$out/worker$i.log" 2>&1 &
    pids+=("$!")
  done
  if ! wait "$coordinator"; then
    echo "N=$n: the coordinator failed; its log:" >&2; tail -20 "$out/coordinator.log" >&2; exit 1
  fi
  for p in "${pids[@]:1}"; do wait "$p" || true; done
  echo "N=$n worker processes ($(cut -d' ' -f1-3 /proc/loadavg) load): $(grep -o '[0-9]* distributed steps: .*' "$out/coordinator.log" | sed 's/ at [0-9:.s]*$//' | tail -1)"
  port=$((port + 1))
done
