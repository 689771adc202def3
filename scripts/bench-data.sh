#!/usr/bin/env bash
# Data-at-scale benchmarks of `dnm train` over WebDataset shards (docs/BENCHMARKS.md, "Data at scale").
# Shards are made by scripts/make-wds-shards.py (Python's tarfile) under $DNM_BENCH_DIR (default /tmp/dnm-bench-data)
# and reused by later runs. Suites:
#   memory  train from 64x64 RGB JPEG shards at two sizes (60,000 and 240,000 images: 0.74 and 2.95 GB decoded as
#           bytes) with a small model; prints the peak RSS of each run against the decoded size.
#   stall   train the default conv model from 64x64 RGB JPEG shards for 40 steps with /metrics on; prints the share
#           of step time spent waiting for data (dnm_data_wait_seconds over dnm_train_step_duration_seconds).
#   scale   1,000,000 28x28 grayscale PNG images in 100 shards; one joint epoch of the default conv model with
#           --workers 2; prints wall time, images/s and peak RSS.
# Usage: scripts/bench-data.sh memory|stall|scale
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:?usage: scripts/bench-data.sh memory|stall|scale}
data=${DNM_BENCH_DIR:-/tmp/dnm-bench-data}
py=/usr/bin/python3; [ -x "$py" ] || py=python3
dotnet build src/Dnm.Node/Dnm.Node.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
dnm() { dotnet src/Dnm.Node/bin/Release/net10.0/dnm.dll "$@"; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short HEAD)"

shards() { # name images size channels format per-shard test-images
  local dir="$data/$1"
  if [ ! -f "$dir/.done" ]; then
    rm -rf "$dir"
    "$py" scripts/make-wds-shards.py --out "$dir" --images "$2" --size "$3" --channels "$4" --format "$5" \
      --per-shard "$6" --test-images "$7" --quiet >&2
    touch "$dir/.done"
  fi
  echo "$dir"
}

peak_rss() { # peak_rss LOG command...: runs the command with its output in LOG, prints its peak RSS in MB
  local out=$1; shift
  local rss; rss=$(mktemp)
  /usr/bin/time -f '%M' -o "$rss" "$@" > "$out" 2>&1 || { tail -5 "$out" >&2; rm -f "$rss"; return 1; }
  echo $(( $(tail -1 "$rss") / 1024 ))
  rm -f "$rss"
}

case "$suite" in
  memory)
    printf '%-10s %-14s %-14s %-10s %s\n' images decoded_MB peak_RSS_MB ratio wall_s
    for n in 60000 240000; do
      dir=$(shards "jpeg64-$n" "$n" 64 3 jpg 5000 2000)
      out=$(mktemp -d)
      start=$(date +%s)
      rss=$(peak_rss "$out/log" dotnet src/Dnm.Node/bin/Release/net10.0/dnm.dll train --dataset "shards:$dir" --image-size 64 --image-channels 3 \
        --encoder mlp --hidden 64 --latent 10 --map 8x8 --pretrain-epochs 1 --epochs 1 --som-iterations 500 \
        --batch-size 256 --eval-limit 2000 --no-metrics --out "$out/run")
      wall=$(( $(date +%s) - start ))
      decoded=$(( n * 64 * 64 * 3 / 1000000 ))
      printf '%-10s %-14s %-14s %-10s %s\n' "$n" "$decoded" "$rss" "$(awk -v d="$decoded" -v r="$rss" 'BEGIN{printf "%.2f", d/r}')" "$wall"
      rm -rf "$out"
    done
    ;;
  stall)
    dir=$(shards jpeg64-20000 20000 64 3 jpg 1000 1000)
    out=$(mktemp -d)
    port=$(( 20000 + RANDOM % 20000 ))
    dnm train --dataset "shards:$dir" --image-size 64 --image-channels 3 --limit 10240 --pretrain-epochs 1 --epochs 0 \
      --som-iterations 100 --eval-every 0 --metrics-port "$port" --metrics-host 127.0.0.1 --out "$out/run" > "$out/log" 2>&1 &
    pid=$!
    last=
    while kill -0 "$pid" 2>/dev/null; do
      if scrape=$(curl -sf "http://127.0.0.1:$port/metrics"); then last=$scrape; fi
      sleep 2
    done
    wait "$pid" || { cat "$out/log"; exit 1; }
    wait_s=$(grep -E '^dnm_data_wait_seconds_sum' <<<"$last" | awk '{s+=$2} END {print s+0}')
    step_s=$(grep -E '^dnm_train_step_duration_seconds_sum' <<<"$last" | awk '{s+=$2} END {print s+0}')
    steps=$(grep -E '^dnm_train_step_duration_seconds_count' <<<"$last" | awk '{s+=$2} END {print s+0}')
    echo "steps scraped: $steps, step time: ${step_s}s, data wait: ${wait_s}s"
    awk -v w="$wait_s" -v s="$step_s" 'BEGIN{printf "data-wait share: %.2f %% (target <= 5 %%)\n", 100*w/s}'
    rm -rf "$out"
    ;;
  scale)
    dir=$(shards png28-1m 1000000 28 1 png 10000 10000)
    echo "dataset: $(du -sh "$dir" | cut -f1) in $(ls "$dir"/train-*.tar | wc -l) training shards"
    out=$(mktemp -d)
    start=$(date +%s)
    rss=$(peak_rss "$out/log" dotnet src/Dnm.Node/bin/Release/net10.0/dnm.dll train --dataset "shards:$dir" --image-size 28 --image-channels 1 --workers 2 --threads 1 \
      --pretrain-epochs 0 --epochs 1 --som-iterations 500 --eval-every 0 --no-metrics --out "$out/run")
    wall=$(( $(date +%s) - start ))
    tail -3 "$out/log"
    echo "wall: ${wall}s, images/s over the epoch and its evaluation: $(( 1000000 / (wall > 0 ? wall : 1) )), peak RSS of the process (coordinator and 2 workers): ${rss} MB"
    rm -rf "$out"
    ;;
  *) echo "unknown suite $suite (memory, stall or scale)" >&2; exit 2 ;;
esac
