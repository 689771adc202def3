#!/usr/bin/env bash
# Data-plane benchmark: raw loopback TCP vs framed+checksummed DataPlaneConnection between two OS
# processes, plus small-frame round-trip latency and 4 MiB round trips over TCP and through shared memory.
# Builds Release once, then runs; arguments go to the benchmark (e.g. --seconds 3, --socket-buffer 0 for OS
# autotuning, --shared-memory 0 to refuse shared memory, --tls for mutual TLS on the framed connections).
# Results: docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build tools/Dnm.Bench/Dnm.Bench.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
exec tools/Dnm.Bench/bin/Release/net10.0/Dnm.Bench dataplane "$@"
