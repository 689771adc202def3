#!/usr/bin/env bash
# Quality bar (a benchmark, not a CI test): trains `dnm train` with the preset configs/mnist-mlp.json on full
# MNIST (60k train, 10k test) at 8x8 and at the paper's 20x30, and writes the final test metrics and wall
# times into docs/BENCHMARKS.md (between the quality markers).
# Usage: scripts/bench-quality.sh [--defaults] [extra dnm train flags...]
#   --defaults: the defaults of `dnm train` (the paper's conv model) instead of the preset
#   extra flags override the preset, e.g. --epochs 4 for a quicker look
# Named suites (mean ± std over seeds, with the targets): scripts/bench-quality.sh --suite NAME [extra dnm train flags...]
#   NAME: mnist-8x8, fashion-8x8, mnist-20x30, coil20-8x8, coil20-20x30 (see scripts/bench-quality-suite.sh)
# Semi-supervised suite: scripts/bench-quality.sh --semi-supervised [extra dnm train flags...]
#   For each dataset of $DATASETS (default "mnist fashion-mnist") and labelled fraction of $FRACTIONS (default
#   "0.01 0.1 1"), trains the preset at 8x8 semi-supervised (--labelled-fraction F) and the same map unsupervised
#   (--label-weight 0: the labels of the same subset only label the nodes), and writes both runs' test accuracy,
#   purity and NMI between the semi-supervised markers of docs/BENCHMARKS.md. A reduced run, e.g.:
#   DATASETS=mnist FRACTIONS="0.01 0.1" scripts/bench-quality.sh --semi-supervised --limit 6000 --epochs 1 ...
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --semi-supervised ]; then
  shift
  exec scripts/bench-semi-supervised.sh "$@"
fi
if [ "${1:-}" = --suite ]; then
  shift
  exec scripts/bench-quality-suite.sh "$@"
fi
preset=(--config configs/mnist-mlp.json)
described="the preset \`configs/mnist-mlp.json\` and the defaults of \`dnm train\` otherwise"
if [ "${1:-}" = --defaults ]; then
  shift
  preset=()
  described="the defaults of \`dnm train\` otherwise"
fi
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
dotnet build src/Dnm.Node -c Release -nologo -v q >/dev/null
dnm=src/Dnm.Node/bin/Release/net10.0/dnm
stamp=$(date -u +%Y%m%d-%H%M%S)
mkdir -p runs
rows=""
for map in 8x8 20x30; do
  out=runs/bench-quality-$map-$stamp
  start=$(date +%s)
  "$dnm" train "${preset[@]}" --map "$map" --out "$out" "$@" > "$out.log" 2>&1 || { echo "error: training $map failed; see $out.log" >&2; exit 1; }
  secs=$(( $(date +%s) - start ))
  m="$out/final-metrics.json"
  row=$(jq -r --arg map "$map" --arg t "$((secs / 60))m$((secs % 60))s" \
    '"| \($map) | \(.purity | .*1000 | round / 1000) | \(.nmi | .*1000 | round / 1000) | \(.qe | .*1000 | round / 1000) | \(.te | .*1000 | round / 1000) | \(.recon_mse | .*100000 | round / 100000) | \($t) |"' "$m")
  echo "$row"
  rows+="$row"$'\n'
done
load=$(cut -d' ' -f1-3 /proc/loadavg)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
block=$(cat <<MD
<!-- quality:begin -->
Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($cpu), load average $load, commit $(git rev-parse --short HEAD),
command \`scripts/bench-quality.sh $*\` ($described; test split, 10,000 images).

| map | purity | NMI | QE | TE | recon MSE | wall time |
| --- | --- | --- | --- | --- | --- | --- |
${rows%$'\n'}
<!-- quality:end -->
MD
)
f=docs/BENCHMARKS.md
if grep -q '<!-- quality:begin -->' "$f"; then
  BLOCK="$block" perl -0pi -e 's/<!-- quality:begin -->.*?<!-- quality:end -->/$ENV{BLOCK}/s' "$f"
else
  printf '\n## Map quality (MNIST)\n\n%s\n' "$block" >> "$f"
fi
echo "updated $f"
