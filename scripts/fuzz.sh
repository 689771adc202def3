#!/usr/bin/env bash
# Fuzzes one of Dnm's readers with afl++ and SharpFuzz: scripts/fuzz.sh <target> <seconds>
# Targets (fuzz/Dnm.Fuzz/Targets): idx, config, checkpoint, image (the decode path), tar (the WebDataset shard reader). Starts from fuzz/corpus/<target>; findings (the queue,
# crashes, hangs) go to fuzz/findings/<target> (not committed). Prints executions, paths and crashes at the end.
# Needs afl++ (apt-get install afl++) and the SharpFuzz.CommandLine tool (installed here if missing).
# A crash reproduces with: fuzz/bin/dnm-fuzz <target> fuzz/findings/<target>/default/crashes/id:...
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/fuzz.sh <idx|config|checkpoint|image|tar> <seconds>"
target=${1:?$usage}
seconds=${2:?$usage}
[ -d "fuzz/corpus/$target" ] || { echo "error: no seed corpus fuzz/corpus/$target; $usage" >&2; exit 2; }
command -v afl-fuzz >/dev/null || { echo "error: afl-fuzz is missing: apt-get install afl++" >&2; exit 2; }
export PATH="$PATH:$HOME/.dotnet/tools"
command -v sharpfuzz >/dev/null || dotnet tool install --global SharpFuzz.CommandLine --version 2.3.0 >/dev/null

# A fresh output folder each time: SharpFuzz instruments Dnm.Core.dll in place, and only once.
build=fuzz/bin
rm -rf "$build"
dotnet build fuzz/Dnm.Fuzz -c Release -nologo -v q -o "$build" >/dev/null
sharpfuzz "$build/Dnm.Core.dll" >/dev/null

findings="fuzz/findings/$target"
rm -rf "$findings"
mkdir -p "$findings"
# The .NET host is not compiled with afl's instrumentation (SharpFuzz reports the managed code's edges), and a
# container's core_pattern cannot be changed: tell afl++ both.
AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 \
  afl-fuzz -V "$seconds" -i "fuzz/corpus/$target" -o "$findings" -t 5000 -m none -- "$build/dnm-fuzz" "$target" >"$findings/afl.log" 2>&1 || {
  echo "error: afl-fuzz failed; its log is $findings/afl.log" >&2; tail -20 "$findings/afl.log" >&2; exit 1; }
stats="$findings/default/fuzzer_stats"
value() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
echo "fuzz $target: $(value execs_done) executions in $(value run_time) s, $(value corpus_count) paths, $(value saved_crashes) crashes, $(value saved_hangs) hangs"
if [ "$(value saved_crashes)" != "0" ]; then
  echo "crashes in $findings/default/crashes (reproduce: $build/dnm-fuzz $target FILE)"
  exit 1
fi
