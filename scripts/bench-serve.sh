#!/usr/bin/env bash
# Placement service benchmark: starts `dnm serve` on a checkpoint (loopback, a free port) and measures latency and
# throughput of POST /v1/place for single images and batches of 64 MNIST PNGs, by 1 and 2 clients, once per
# --replicas value. Without --checkpoint it first trains a throwaway 20x30 map of the default model (latent 100) on
# 2000 images (the model's size, not its quality, sets the cost). Results: docs/BENCHMARKS.md, "Placement service".
#   scripts/bench-serve.sh [--checkpoint CKPT] [--replicas "1 2"] [--seconds 10]
set -euo pipefail
cd "$(dirname "$0")/.."
checkpoint= replicas="1 2" seconds=10
while [ $# -gt 0 ]; do
  case "$1" in
    --checkpoint) checkpoint=$2; shift 2 ;;
    --replicas) replicas=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
dotnet build src/Dnm.Node/Dnm.Node.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
dotnet build tools/Dnm.Bench/Dnm.Bench.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
dnm=(dotnet src/Dnm.Node/bin/Release/net10.0/dnm.dll)
work=$(mktemp -d)
server=
cleanup() { [ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
if [ -z "$checkpoint" ]; then
  echo "training a throwaway 20x30 map (default model) for the benchmark..."
  DNM_METRICS_PORT=0 "${dnm[@]}" train --dataset mnist --limit 2000 --map 20x30 --epochs 1 --pretrain-epochs 1 \
    --som-iterations 100 --out "$work/run" >/dev/null
  checkpoint=$work/run/checkpoints/final.ckpt
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "commit $(git rev-parse --short HEAD); $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $replicas; do
  "${dnm[@]}" serve --checkpoint "$checkpoint" --host 127.0.0.1 --port "$port" --replicas "$r" --max-concurrency 2 --max-queue 16 \
    >"$work/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
    sleep 0.1
  done
  echo "== dnm serve --replicas $r --max-concurrency 2 =="
  tools/Dnm.Bench/bin/Release/net10.0/Dnm.Bench serve --url "http://127.0.0.1:$port" --seconds "$seconds"
  kill "$server"; wait "$server" 2>/dev/null || true; server=
done
