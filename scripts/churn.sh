#!/usr/bin/env bash
# Churn under load: one `dnm node --role coordinator` and N `dnm node --role worker` processes on this machine train a
# tiny model (a small MLP on 1536 synthetic 12x12 images, so nothing is downloaded) while a seeded random worker is SIGKILLed every --every seconds and started
# again with the same command, for --minutes; then the run is left to finish. Checks that
#   - the coordinator exits 0 and writes final-metrics.json, and every worker still running at the end exits 0;
#   - no step is applied twice: the coordinator's commit log (--commit-log on, commits.log in the run directory) holds the
#     global steps 1..S exactly once each, S being the step the run finished at, and the replica's Adam step count never
#     moves by more than one a step;
#   - the run outlasted the churn: its last step ran with every worker, the restarted ones included;
#   - the coordinator's resident memory stays bounded: its peak VmRSS (sampled every 2 s) in the last minute of the churn is
#     at most --rss-margin percent above its peak in the first minute of it (a third of the churn when that is shorter).
# Prints a line at every kill and when the churn ends, then one summary line ("churn: ok ...", churn_steps= being the steps
# committed while workers were being killed) and exits 0, or names the failed check and exits 1. Results: docs/BENCHMARKS.md, "Churn".
#   scripts/churn.sh [--workers 12] [--minutes 5] [--every 10] [--seed 1] [--epochs 110] [--rss-margin 50] [--keep DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=12 minutes=5 every=10 seed=1 epochs=110 margin=50 keep=
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --every) every=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --rss-margin) margin=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ "$workers" -ge 2 ] || { echo "--workers must be at least 2 (one is killed at a time), got $workers" >&2; exit 2; }
dnm=src/Dnm.Node/bin/Release/net10.0/dnm
[ -x "$dnm" ] || dotnet build src/Dnm.Node/Dnm.Node.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
root=${keep:-$(mktemp -d /tmp/dnm-churn.XXXXXX)}
mkdir -p "$root"
coordinator= sampler=
declare -a worker
cleanup() {
  for p in $coordinator "${worker[@]}" $sampler; do kill -9 "$p" 2>/dev/null || true; done
  [ -n "$keep" ] || rm -rf "$root"
}
trap cleanup EXIT
# Stopped from outside (a test's time limit): say how far the run got before the nodes are stopped.
trap 'echo "churn: stopped after $((SECONDS - ${start:-$SECONDS})) s; the coordinator log ends:" >&2; tail -15 "$root/coordinator.log" >&2 2>/dev/null; exit 143' TERM INT
port=$((20000 + RANDOM % 20000))   # before seeding: two runs with one seed must not race for one port
RANDOM=$seed
# Gaussian blobs at four positions, one per label, with seeded jitter (as scripts/rehearse-k8s.sh makes them).
mkdir -p "$root/data"
perl -e '
  my ($dir, $count, $size, $seed) = @ARGV;
  my @centres = ([0.25, 0.25], [0.25, 0.75], [0.75, 0.25], [0.75, 0.75]);
  srand($seed);
  my ($pixels, $labels) = ("", "");
  for my $i (0 .. $count - 1) {
    my $label = $i % 4; $labels .= chr($label);
    my $cy = $centres[$label][0] * ($size - 1) + 2 * rand() - 1;
    my $cx = $centres[$label][1] * ($size - 1) + 2 * rand() - 1;
    for my $y (0 .. $size - 1) { for my $x (0 .. $size - 1) {
      my $d2 = ($y - $cy) ** 2 + ($x - $cx) ** 2;
      $pixels .= chr(int(230 * exp(-$d2 / 4) + rand(25)));
    } }
  }
  open(my $f, ">:raw", "$dir/images.idx") or die; print $f pack("NNNN", 0x803, $count, $size, $size), $pixels; close $f;
  open(my $g, ">:raw", "$dir/labels.idx") or die; print $g pack("NN", 0x801, $count), $labels; close $g;
' "$root/data" 1536 12 "$seed"
# Micro-batches of 8 (12 per batch of 96), so that 12 workers all get work; one torch thread a process; failures found
# within seconds (DNM_DOWN_AFTER 3s, a step retried after 30 s at most); replica checksums compared every 10 steps.
export DNM_DOWN_AFTER=3s DNM_CHECKSUM_EVERY=10
training=(--dataset "idx:$root/data/images.idx,$root/data/labels.idx" --batch-size 96 --micro-batch 8 --encoder mlp --hidden 64,32 --latent 8 --map 4x4
          --lattice rect --sigma-floor 0.3 --smooth-weight 0
          --pretrain-epochs 2 --epochs "$epochs" --som-iterations 50 --eval-every 0 --threads 1 --device cpu --seed "$seed")
worker_cmd=("$dnm" node --role worker --seeds "127.0.0.1:$port" --host 127.0.0.1 --port 0 --no-metrics --step-timeout 30s)
"$dnm" node --role coordinator --host 127.0.0.1 --port "$port" --min-workers "$workers" --no-metrics --step-timeout 30s \
  --commit-log on --out "$root/run" "${training[@]}" >"$root/coordinator.log" 2>&1 &
coordinator=$!
start=$SECONDS
( while kill -0 "$coordinator" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$coordinator/status" 2>/dev/null || true)
    [ -n "$rss" ] && echo "$((SECONDS - start)) $rss"
    sleep 2
  done >"$root/rss.txt" ) &
sampler=$!
for ((i = 0; i < workers; i++)); do
  "${worker_cmd[@]}" >"$root/worker$i.log" 2>&1 &
  worker[i]=$!
done
# Churn begins once the first step has committed (every worker has joined).
until [ -s "$root/run/commits.log" ] || ! kill -0 "$coordinator" 2>/dev/null; do sleep 1; done
# It ends after --minutes, or earlier once three quarters of the run's steps have committed (on a fast machine), so that the
# last quarter is left for the restarted workers to rejoin: 16 steps an epoch (1536 samples, batches of 96).
total=$((1536 / 96 * (2 + epochs))) stop_at=$((1536 / 96 * (2 + epochs) * 3 / 4))
kills=0 churn_from=$((SECONDS - start)) churn_end=$((SECONDS + minutes * 60))
committed() { wc -l <"$root/run/commits.log"; }
churn_first=$(committed)
while [ $SECONDS -lt $churn_end ] && [ "$(committed)" -lt "$stop_at" ] && kill -0 "$coordinator" 2>/dev/null; do
  # Checked every second: on a fast machine the three quarters come between two kills.
  for ((t = 0; t < every; t++)); do
    sleep 1
    [ "$(committed)" -lt "$stop_at" ] && kill -0 "$coordinator" 2>/dev/null || break 2
  done
  i=$((RANDOM % workers))
  kill -9 "${worker[i]}" 2>/dev/null || true
  wait "${worker[i]}" 2>/dev/null || true
  kills=$((kills + 1))
  echo "--- SIGKILLed at $((SECONDS - start)) s, started again" >>"$root/worker$i.log"
  echo "churn: $((SECONDS - start)) s: worker $i SIGKILLed and started again (kill $kills), $(committed) of $total steps committed"
  "${worker_cmd[@]}" >>"$root/worker$i.log" 2>&1 &
  worker[i]=$!
done
churn_to=$((SECONDS - start))
echo "churn: $churn_to s: the churn is over, $(committed) of $total steps committed; waiting for the run to finish"
# Steps committed while workers were being killed: the throughput under churn.
churn_commits=$(($(committed) - churn_first))
fail() { echo "churn: FAILED: $*" >&2; echo "run files in $root" >&2; keep=$root; exit 1; }
code=0; wait "$coordinator" || code=$?
duration=$((SECONDS - start))
[ "$code" -eq 0 ] || { tail -20 "$root/coordinator.log" >&2; fail "the coordinator exited $code"; }
[ -s "$root/run/final-metrics.json" ] || fail "no final-metrics.json in $root/run"
# The last steps ran with every worker, the restarted ones included: the run outlasted the churn.
last_world=$(tail -1 "$root/run/commits.log" | awk '{split($3, w, "="); print w[2]}')
[ "$last_world" = "$workers" ] || fail "the run's last step ran with $last_world of $workers workers: it ended before every restarted worker had rejoined; raise --epochs"
bad_workers=0
for ((i = 0; i < workers; i++)); do
  c=0; timeout 120 tail --pid="${worker[i]}" -f /dev/null || kill -9 "${worker[i]}" 2>/dev/null || true
  wait "${worker[i]}" || c=$?
  [ "$c" -eq 0 ] || { bad_workers=$((bad_workers + 1)); echo "worker $i exited $c; its log ends:" >&2; tail -5 "$root/worker$i.log" >&2; }
done
[ "$bad_workers" -eq 0 ] || fail "$bad_workers worker(s) still running at the end did not exit 0"
final=$(grep -o 'run finished at global step [0-9]*' "$root/coordinator.log" | tail -1 | grep -o '[0-9]*$' || true)
[ "$final" = "$total" ] || fail "the coordinator finished at global step ${final:-?}, not at the run's last step $total"
commits=$(wc -l <"$root/run/commits.log")
# Every step 1..final exactly once, in order; the Adam step count moves by 0 (SOM-less steps) or 1 a step.
awk -v final="$final" '
  { split($1, s, "="); split($4, a, "=");
    if (s[2] != NR) { printf "line %d of commits.log is step %s, expected %d (a step applied twice or skipped)\n", NR, s[2], NR; bad = 1; exit 1 }
    if (NR > 1 && (a[2] - adam < 0 || a[2] - adam > 1)) { printf "step %d moved the Adam step count from %d to %d\n", NR, adam, a[2]; bad = 1; exit 1 }
    adam = a[2] }
  END { if (!bad && NR != final) { printf "commits.log has %d steps, the run finished at step %d\n", NR, final; exit 1 } }' \
  "$root/run/commits.log" >&2 || fail "the commit log is not steps 1..$final once each"
worlds=$(awk '{print $2}' "$root/run/commits.log" | sort -u | wc -l)
# Peak RSS (MiB) in the first and in the last minute of the churn (a third of it, if it is shorter than 3 minutes): the load
# phase, after start-up and before the final evaluation.
window=$(( (churn_to - churn_from) / 3 < 60 ? (churn_to - churn_from) / 3 : 60 ))
read -r first last < <(awk -v from="$churn_from" -v to="$churn_to" -v w="$window" '
  $1 >= from && $1 < from + w && $2 > f { f = $2 } $1 > to - w && $1 <= to && $2 > l { l = $2 }
  END { printf "%d %d\n", f / 1024, l / 1024 }' "$root/rss.txt")
[ "$first" -gt 0 ] || fail "no RSS sample of the coordinator"
growth=$(( (last - first) * 100 / first ))
summary="workers=$workers kills=$kills every=${every}s churn=${churn_from}-${churn_to}s churn_steps=$churn_commits run=${duration}s steps=$final commits=$commits worlds=$worlds rss_peak_first_${window}s=${first}MiB rss_peak_last_${window}s=${last}MiB growth=${growth}% (margin ${margin}%)"
[ "$kills" -gt 0 ] || fail "the run ended before the first kill; raise --epochs ($summary)"
[ "$growth" -le "$margin" ] || fail "the coordinator's peak RSS grew ${growth}% > ${margin}% ($summary)"
echo "churn: ok $summary"
