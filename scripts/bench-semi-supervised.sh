#!/usr/bin/env bash
# The semi-supervised suite of scripts/bench-quality.sh (run it as `scripts/bench-quality.sh --semi-supervised`).
# For each dataset of $DATASETS and labelled fraction of $FRACTIONS: `dnm train` with the preset configs/mnist-mlp.json
# at 8x8, semi-supervised (--labelled-fraction F) and unsupervised with the same labelled subset naming the nodes
# (--label-weight 0: the same map as plain unsupervised training, docs/algorithm.md). Writes the final test accuracy,
# purity and NMI of both between the semi-supervised markers of docs/BENCHMARKS.md. Extra flags go to every run.
#   LABEL_WEIGHT  the semi-supervised runs' --label-weight (default 30, the default of dnm train)
#   INIT_FROM     a path with {dataset} in it, e.g. runs/ae-{dataset}.safetensors: every run of a dataset warm-starts from that
#                 autoencoder (dnm export of a run of the same preset and seed; --init-parts weights --pretrain-epochs 0), so the
#                 runs share one autoencoder pre-training instead of repeating it
set -euo pipefail
cd "$(dirname "$0")/.."
datasets=${DATASETS:-mnist fashion-mnist}
fractions=${FRACTIONS:-0.01 0.1 1}
label_weight=${LABEL_WEIGHT:-30}
init_from=${INIT_FROM:-}
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
dotnet build src/Dnm.Node -c Release -nologo -v q >/dev/null
dnm=src/Dnm.Node/bin/Release/net10.0/dnm
stamp=$(date -u +%Y%m%d-%H%M%S)
mkdir -p runs
r3='(. // 0 | .*1000 | round / 1000)'
rows=""
for dataset in $datasets; do
  for f in $fractions; do
    declare -A result=()
    warm=()
    if [ -n "$init_from" ]; then
      ae=${init_from//\{dataset\}/$dataset}
      [ -f "$ae" ] || { echo "error: no autoencoder at $ae (INIT_FROM); export one with dnm export" >&2; exit 2; }
      warm=(--init-from "$ae" --init-parts weights --pretrain-epochs 0)
    fi
    for mode in semi base; do
      out=runs/bench-semisup-$dataset-$f-$mode-$stamp
      weight=$([ "$mode" = semi ] && echo "$label_weight" || echo 0)
      start=$(date +%s)
      "$dnm" train --config configs/mnist-mlp.json --dataset "$dataset" --map 8x8 --labelled-fraction "$f" --label-weight "$weight" \
        --out "$out" "${warm[@]}" "$@" > "$out.log" 2>&1 || { echo "error: $dataset $f $mode failed; see $out.log" >&2; exit 1; }
      secs=$(( $(date +%s) - start ))
      result[$mode]=$(jq -r --arg t "${secs}s" "\"\(.accuracy | $r3) | \(.purity | $r3) | \(.nmi | $r3) | \(\$t)\"" "$out/final-metrics.json")
    done
    labelled=$(grep -m1 -o '[0-9]* of [0-9]* training samples labelled' "runs/bench-semisup-$dataset-$f-semi-$stamp.log" || echo "?")
    row="| $dataset | $f ($labelled) | ${result[semi]} | ${result[base]} |"
    echo "$row"
    rows+="$row"$'\n'
  done
done
load=$(cut -d' ' -f1-3 /proc/loadavg)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
block=$(cat <<MD
<!-- semisup:begin -->
Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($cpu), load average $load, commit $(git rev-parse --short HEAD), command
\`DATASETS="$datasets" FRACTIONS="$fractions" LABEL_WEIGHT=$label_weight${init_from:+ INIT_FROM=$init_from} scripts/bench-quality.sh --semi-supervised $*\` (the preset \`configs/mnist-mlp.json\`
at 8x8; test split${init_from:+; every run warm-started from one autoencoder a dataset, $init_from}). "semi": trained with the labelled samples' labels (label weight $label_weight); "unsup.": the same map trained unsupervised
(\`--label-weight 0\`), its nodes labelled by the same labelled samples. Accuracy: the test samples whose BMU's class is theirs.

| dataset | labelled | semi accuracy | semi purity | semi NMI | semi time | unsup. accuracy | unsup. purity | unsup. NMI | unsup. time |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows%$'\n'}
<!-- semisup:end -->
MD
)
f=docs/BENCHMARKS.md
if grep -q '<!-- semisup:begin -->' "$f"; then
  BLOCK="$block" perl -0pi -e 's/<!-- semisup:begin -->.*?<!-- semisup:end -->/$ENV{BLOCK}/s' "$f"
else
  printf '\n## Semi-supervised training (8x8)\n\n%s\n' "$block" >> "$f"
fi
echo "updated $f"
