#!/usr/bin/env bash
# Cluster benchmark: the bare Trainer against `dnm train --workers N` (embedded coordinator and N workers over
# loopback) on MNIST; mean step time and the all-reduce share of it. Builds Release once; arguments go to the
# benchmark (e.g. --workers 1,2,4 --limit 4096 --batch-size 256 --threads 1). Results: docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build tools/Dnm.Bench/Dnm.Bench.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
exec tools/Dnm.Bench/bin/Release/net10.0/Dnm.Bench cluster "$@"
