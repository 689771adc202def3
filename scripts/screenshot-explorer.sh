#!/usr/bin/env bash
# Regenerates docs/explorer.png, the README's screenshot of `dnm explore`: serves the explorer for a checkpoint on the
# MNIST test split and takes a headless Chromium screenshot of it with the label map and one node's members open.
#   scripts/screenshot-explorer.sh CKPT [OUT.png] [NODE]
# The committed picture: a 12x12 map, `dnm train --dataset mnist --limit 10000 --map 12x12 --epochs 3
# --pretrain-epochs 4 --som-iterations 1500` (docs/BENCHMARKS.md, "Placement service").
set -euo pipefail
cd "$(dirname "$0")/.."
checkpoint=${1:?usage: scripts/screenshot-explorer.sh CKPT [OUT.png] [NODE]}
out=${2:-docs/explorer.png}
node=${3:-0}
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "chromium is needed: apt-get install --no-install-recommends chromium" >&2; exit 2; }
dotnet build src/Dnm.Node/Dnm.Node.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
dotnet src/Dnm.Node/bin/Release/net10.0/dnm.dll explore --checkpoint "$checkpoint" --dataset mnist --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1200); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,860 --virtual-time-budget=8000 \
  --screenshot="$out" "http://127.0.0.1:$port/#overlay=labels&node=$node" 2>/dev/null
echo "wrote $out"
