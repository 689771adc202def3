#!/usr/bin/env bash
# Explorer benchmark: the zoom and pan round trip on a 100x100 map in headless Chromium (target: under 2 s, the whole
# map drawn in one frame under 500 ms). Runs LargeMapExplorerSpec's round-trip spec --runs times; the spec measures in
# the page (from before the first input to the frame after the last one) and prints "round trip N ms; the whole map
# drawn in M ms". The spec asserts that the view comes back, not the times: a timed assert fails on a loaded CI
# machine, so the target is met here, on purpose, on a quiet one. Results: docs/BENCHMARKS.md, "Map explorer".
#   scripts/bench-explorer.sh [--runs 5]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v chromium >/dev/null || command -v chromium-browser >/dev/null ||
  { echo "chromium is needed: apt-get install --no-install-recommends chromium" >&2; exit 2; }
dotnet build tests/Dnm.Node.Tests/Dnm.Node.Tests.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
log=$(mktemp)
trap 'rm -f "$log" "$log.runs"' EXIT
for i in $(seq "$runs"); do
  dotnet test tests/Dnm.Node.Tests/Dnm.Node.Tests.csproj -c Release --no-build --nologo \
    --filter "FullyQualifiedName~LargeMapExplorerSpec.A_zoom_and_pan_round_trip" \
    --logger "console;verbosity=detailed" >"$log" 2>&1 || { cat "$log"; exit 1; }
  line=$(grep -oE 'round trip [0-9]+ ms; the whole map drawn in [0-9.]+ ms' "$log" | tail -1)
  [ -n "$line" ] || { cat "$log"; echo "the spec printed no timing" >&2; exit 1; }
  echo "run $i: $line"
done | tee "$log.runs"
summary() { # $1: field, $2: what, $3: target ms, $4: printf format
  sort -n <(awk -v f="$1" '{ print $f }' "$log.runs") | awk -v what="$2" -v target="$3" -v fmt="$4" '
    { v[NR] = $1 }
    END { printf what ": median " fmt " ms, max " fmt " ms over %d runs (target < %d ms: %s)\n", v[int((NR + 1) / 2)], v[NR], NR, target, v[NR] < target ? "met" : "MISSED" }'
}
summary 5 "round trip" 2000 "%d"
summary 12 "whole-map draw" 500 "%.1f"
