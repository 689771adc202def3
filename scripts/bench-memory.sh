#!/usr/bin/env bash
# Memory benchmark: 2,000 joint training steps (batch 64, 2 threads, real MNIST) through the step
# engine, RSS sampled every 100 steps. Fails (exit 1) when the RSS at the end exceeds the RSS at
# step 100 by more than max(5 %, 50 MB): a native tensor that escapes a step's dispose scope shows
# up here. Builds Release once; arguments go to the benchmark (e.g. --steps 500 --batch 256).
# Results: docs/BENCHMARKS.md, "Memory".
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build tools/Dnm.Bench/Dnm.Bench.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
exec tools/Dnm.Bench/bin/Release/net10.0/Dnm.Bench memory "$@"
