#!/usr/bin/env bash
# A local rehearsal of deploy/k8s: the Kubernetes topology of an overlay (default cpu) as processes on this machine.
#
# Every pod of the rendered Indexed Jobs (dnm-coordinator-0, the seed; dnm-worker-0..N-1: a Job's pod i has the
# hostname <job>-<i>) becomes one `dnm node` process in its own network namespace, with its own IP on a bridge,
# started with the `dnm` container's args and exactly its environment from the rendered manifests
# (tests/Dnm.Deploy.Tests render-env): the downward-API variables become the pod's completion index, name and IP,
# $(VAR) references are expanded as the kubelet does, and the DNS names of the pods that have a subdomain (the
# coordinators: <pod>.dnm-gossip) resolve through the namespace's hosts file (/etc/netns/<ns>/hosts, which
# `ip netns exec` mounts over /etc/hosts); worker pods have no name, as on the cluster. Each node also runs with the
# container's security context and volumes, in its own mount namespace: as the manifests' user and group (not root),
# without capabilities or privilege escalation (no_new_privs), on a read-only root file system in which only its
# volumes are writable: its own emptyDirs (/tmp, and /data, which a stand-in for the init container fills), the
# claim (/runs, shared by the pods that mount it) and the read-only ConfigMap (the run config). While it trains, the
# script scrapes every node's /metrics, /healthz and /readyz as the PodMonitor and the probes would. It trains a short
# run to completion and fails loudly otherwise: every node must exit 0, as both Jobs need to complete.
#
# What differs from Kubernetes, on purpose: container paths (DNM_CONFIG, DNM_DATA, the run config's "out", the
# volumes) are rooted in a temporary folder, except /tmp, which each node sees as its own; the run config mounted at
# DNM_CONFIG is replaced by a short run on a synthetic IDX dataset (so CI needs no download and finishes in a minute
# or two), which also stands in for the init container's download; the processes run the built `dnm` (mounted
# read-only at <work>/app, as the image has it at /app) and the machine's .NET, not an image; no NetworkPolicy is
# enforced.
#
# Needs root (network and mount namespaces), iproute2 (`ip`), util-linux (unshare, setpriv, findmnt) and a build
# (`dotnet build -c Release Dnm.sln`).
# Usage: scripts/rehearse-k8s.sh [--overlay cpu] [--timeout SECONDS] [--keep] [--partition-coordinator SECONDS]
#                                [--partition-halves SECONDS]
# --partition-coordinator S: once the run has written its first checkpoint, cut the coordinator's link for S seconds
# (see "partition" below); the run must still finish, and every worker must have rejoined on its own.
# --partition-halves S: instead split the pods into two halves that cannot reach each other for S seconds (the first
# half, with the coordinator, stays on the bridge; the second moves to a bridge of its own): with 1 coordinator and 3
# workers, a 2|2 partition. The run must still finish, and the nodes of the side the split-brain resolver downed must
# have rejoined on their own.
# Exit status 0 when the run finished on every node; non-zero, with the reason and the nodes' logs, otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
overlay=cpu
timeout_s=600
keep=0
partition_s=0
partition_mode=coordinator
while [ $# -gt 0 ]; do
  case "$1" in
    --overlay) overlay=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --partition-coordinator) partition_s=$2; partition_mode=coordinator; shift 2 ;;
    --partition-halves) partition_s=$2; partition_mode=halves; shift 2 ;;
    *) echo "usage: $0 [--overlay cpu] [--timeout SECONDS] [--keep] [--partition-coordinator S | --partition-halves S]" >&2; exit 2 ;;
  esac
done

die() {
  echo "rehearse-k8s: FAILED: $*" >&2
  # What each node said last (Akka's stack traces left out), so that a failure in CI can be read from its output alone.
  if [ -n "${work:-}" ]; then
    for l in "$work"/dnm-*.log; do
      [ -f "$l" ] || continue
      echo "--- the end of $(basename "$l" .log)'s log:" >&2
      grep -vE '^\s+at |^\s*$|^Cause:' "$l" | tail -n 12 >&2
    done
  fi
  exit 1
}
say() { echo "rehearse-k8s: $*"; }

[ "$(id -u)" = 0 ] || die "needs root (it creates network and mount namespaces)"
command -v ip >/dev/null || die "needs iproute2 (apt-get install -y iproute2)"
for tool in unshare setpriv findmnt; do command -v "$tool" >/dev/null || die "needs $tool (util-linux)"; done
dnm=${DNM_BIN:-$repo/src/Dnm.Node/bin/Release/net10.0/dnm}
render=$repo/tests/Dnm.Deploy.Tests/bin/Release/net10.0/Dnm.Deploy.Tests.dll
[ -x "$dnm" ] || die "no $dnm: build first (dotnet build -c Release Dnm.sln)"
[ -f "$render" ] || die "no $render: build first (dotnet build -c Release Dnm.sln)"

# Names unique to this run, so concurrent rehearsals (and anything else) are left alone.
id=$$
net=$(( (id % 200) + 20 ))
prefix=10.231.$net
bridge=dnmbr$id
# The second half's bridge while --partition-halves holds.
bridge2=dnmbq$id
# Not under /tmp: every node gets its own /tmp. Readable by the nodes' user.
work=$(mktemp -d /var/tmp/dnm-rehearse.XXXXXX)
chmod 755 "$work"
namespaces=()
pids=()

cleanup() {
  local rc=$?
  set +e
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  sleep 1
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  for ns in "${namespaces[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    ip netns delete "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
  done
  ip link delete "$bridge" 2>/dev/null
  ip link delete "$bridge2" 2>/dev/null
  if [ "$keep" = 1 ]; then echo "rehearse-k8s: kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the manifests, rendered ---
say "rendering deploy/k8s/overlays/$overlay"
dotnet "$render" render-env "$overlay" "$work/manifests" || die "could not render deploy/k8s/overlays/$overlay"
root=$work/manifests/root
coordinators=$(cat "$work/manifests/dnm-coordinator.completions")
workers=$(cat "$work/manifests/dnm-worker.completions")
[ "$coordinators" -ge 1 ] && [ "$workers" -ge 1 ] || die "the overlay has $coordinators coordinator(s) and $workers worker(s)"
# The pods: an Indexed Job's pod i has the hostname <job>-<i>; their addresses on the bridge.
pods=()
declare -A job_of index_of ip_of
for job in dnm-coordinator dnm-worker; do
  for i in $(seq 0 $(($(cat "$work/manifests/$job.completions") - 1))); do
    pods+=("$job-$i"); job_of[$job-$i]=$job; index_of[$job-$i]=$i
  done
done
n=10
for pod in "${pods[@]}"; do ip_of[$pod]=$prefix.$n; n=$((n + 1)); done

# --- the network: a bridge, and one namespace with a veth on it per pod ---
ip link add "$bridge" type bridge
ip addr add "$prefix.1/24" dev "$bridge"
ip link set "$bridge" up
k=0
for pod in "${pods[@]}"; do
  ns=dnm$id-$pod
  ip netns add "$ns"
  namespaces+=("$ns")
  host_end=dv$id-$k; pod_end=dp$id-$k; k=$((k + 1))
  ip link add "$host_end" type veth peer name "$pod_end"
  ip link set "$host_end" master "$bridge" up
  ip link set "$pod_end" netns "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "${ip_of[$pod]}/24" dev "$pod_end"
  ip -n "$ns" link set "$pod_end" up
  # The headless Service's DNS: <hostname>.<subdomain> (and its long form) for the pods that have a subdomain, as
  # cluster DNS would answer.
  mkdir -p "/etc/netns/$ns"
  {
    echo "127.0.0.1 localhost"
    for other in "${pods[@]}"; do
      subdomain=$(cat "$work/manifests/${job_of[$other]}.subdomain")
      [ -z "$subdomain" ] || echo "${ip_of[$other]} $other.$subdomain $other.$subdomain.default.svc.cluster.local"
    done
  } > "/etc/netns/$ns/hosts"
done
say "network: bridge $bridge $prefix.0/24; $(for p in "${pods[@]}"; do printf '%s=%s ' "$p" "${ip_of[$p]}"; done)"

# --- the run: a short run on a synthetic dataset, at the path the manifests mount the run config ---
mkdir -p "$work/dataset"
perl -e '
  my ($dir, $count, $size) = @ARGV;
  my @centres = ([0.25, 0.25], [0.25, 0.75], [0.75, 0.25], [0.75, 0.75]);
  srand(7);
  my ($pixels, $labels) = ("", "");
  for my $i (0 .. $count - 1) {
    my $label = $i % 4; $labels .= chr($label);
    my $cy = $centres[$label][0] * ($size - 1) + rand() - 0.5;
    my $cx = $centres[$label][1] * ($size - 1) + rand() - 0.5;
    for my $y (0 .. $size - 1) { for my $x (0 .. $size - 1) {
      my $d2 = ($y - $cy) ** 2 + ($x - $cx) ** 2;
      $pixels .= chr(int(255 * exp(-$d2 / (0.02 * $size * $size))));
    } }
  }
  open(my $f, ">:raw", "$dir/blobs-images.idx") or die; print $f pack("NNNN", 0x803, $count, $size, $size), $pixels; close $f;
  open(my $g, ">:raw", "$dir/blobs-labels.idx") or die; print $g pack("NN", 0x801, $count), $labels; close $g;
' "$work/dataset" 192 12
config_var=$(grep -E '^DNM_CONFIG=' "$work/manifests/dnm-coordinator.env" | head -n 1 | cut -d= -f2-)
data_var=$(grep -E '^DNM_DATA=' "$work/manifests/dnm-coordinator.env" | head -n 1 | cut -d= -f2-)
[ -n "$config_var" ] || die "the coordinator's manifest sets no DNM_CONFIG"
[ -n "$data_var" ] || die "the coordinator's manifest sets no DNM_DATA"
[ -f "$root$config_var" ] || die "DNM_CONFIG=$config_var is not where the manifests mount the run config"
out=/runs/rehearsal
# A partition must fall in the middle of the run, and the run must go on long enough after it for the downed side (the
# coordinator, or one half) to rejoin and train again. A step of this model takes about 12 ms on one idle worker: the
# 32 steps of the plain rehearsal can end within a second of the cut's trigger, so a partitioned run has 9,600 steps
# (two minutes idle), evaluated only at the end.
joint_epochs=2 eval_every=1
[ "$partition_s" -gt 0 ] && joint_epochs=1200 eval_every=0
cat > "$root$config_var" <<EOF
{
  "dataset": "idx:$root$data_var/blobs-images.idx,$root$data_var/blobs-labels.idx",
  "encoder": "conv", "channels": [4, 4, 2], "kernel": 3, "latent": 8, "map": "3x3",
  "lattice": "rect", "sigma-floor": 0.3, "smooth-weight": 0,
  "batch-size": 24, "pretrain-epochs": 2, "epochs": $joint_epochs, "som-iterations": 10,
  "checkpoint-every": 16, "eval-every": $eval_every, "threads": 1, "device": "cpu",
  "out": "$root$out"
}
EOF
chmod -R a+rX "$root"

# --- the nodes ---
# The Secret dnm-tls that the manifests mount: a CA and a node certificate, as docs/kubernetes.md makes them.
# Made by the build's dnm even where DNM_BIN names another binary to run as the nodes.
"$repo/src/Dnm.Node/bin/Release/net10.0/dnm" cert create --out "$work/tls" --nodes dnm-coordinator-0.dnm-gossip > "$work/cert-create.log" 2>&1 \
  || die "dnm cert create failed: $(cat "$work/cert-create.log")"
# The container's environment: downward-API values for this pod, $(VAR) expanded from the variables before it,
# container paths rooted in $root.
pod_env() {
  local pod=$1 file=$2 line name value ref
  declare -A seen=()
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    name=${line%%=*}; value=${line#*=}
    case "$value" in
      # A Job's pod is named <hostname>-<random>; its index is the Job controller's annotation.
      @fieldRef:metadata.name) value=$pod-r$id ;;
      @fieldRef:status.podIP) value=${ip_of[$pod]} ;;
      "@fieldRef:metadata.annotations['batch.kubernetes.io/job-completion-index']") value=${index_of[$pod]} ;;
      @fieldRef:*) die "$file: unsupported downward-API field ${value#@fieldRef:}" ;;
    esac
    while [[ "$value" =~ \$\(([A-Za-z_][A-Za-z0-9_]*)\) ]]; do
      ref=${BASH_REMATCH[1]}
      [ -n "${seen[$ref]+x}" ] || die "$file: $name refers to \$($ref), which is not defined before it"
      value=${value//"\$($ref)"/${seen[$ref]}}
    done
    case "$value" in /*) value=$root$value ;; esac
    seen[$name]=$value
    printf '%s=%s\n' "$name" "$value"
  done < "$file"
}

# The pod's file system, in a mount namespace of its own (a script run by `unshare --mount` inside the network
# namespace): its volumes bound where the container sees them (emptyDirs of its own, the shared claim, the read-only
# ConfigMap), then every other mount remounted read-only (readOnlyRootFilesystem), then dnm started as the manifests'
# user with no capabilities and no_new_privs.
bin_dir=$(cd "$(dirname "$dnm")" && pwd)
dotnet_root=${DOTNET_ROOT:-$(dirname "$(readlink -f "$(command -v dotnet)")")}
mkdir -p "$work/app" "$work/dotnet"
pod_script() {
  local pod=$1 job=${job_of[$1]} dir=$work/pods/$1 path kind mode uid gid read_only target
  uid=$(grep -E '^runAsUser=' "$work/manifests/$job.security" | cut -d= -f2)
  gid=$(grep -E '^runAsGroup=' "$work/manifests/$job.security" | cut -d= -f2)
  read_only=$(grep -E '^readOnlyRootFilesystem=' "$work/manifests/$job.security" | cut -d= -f2)
  [ -n "$uid" ] && [ "$uid" != 0 ] || die "$job: the rehearsal runs nodes as the manifests' non-root user, but runAsUser is '$uid'"
  mkdir -p "$dir"
  local -a writable=() binds=()
  while read -r path kind mode; do
    [ -n "$path" ] || continue
    # /tmp is used by name (.NET's diagnostic sockets): the pod's /tmp volume is mounted at /tmp itself.
    if [ "$path" = /tmp ]; then target=/tmp; else target=$root$path; mkdir -p "$target"; fi
    case "$kind" in
      emptyDir)
        mkdir -p "$dir/volumes$path"; chown "$uid:$gid" "$dir/volumes$path"
        # The init container's download, done here: the synthetic dataset in the data volume.
        if [ "$path" = "$data_var" ]; then cp "$work/dataset"/* "$dir/volumes$path/"; chown "$uid:$gid" "$dir/volumes$path"/*; fi
        binds+=("$dir/volumes$path $target $mode") ;;
      persistentVolumeClaim)
        chown "$uid:$gid" "$target"
        binds+=("$target $target $mode") ;;
      configMap) binds+=("$target $target ro") ;;
      # The Secret dnm-tls: certificates from `dnm cert create` (made once above), readable by the pod's group only.
      secret)
        mkdir -p "$dir/volumes$path"; cp "$work/tls"/* "$dir/volumes$path/"
        chown -R "root:$gid" "$dir/volumes$path"; chmod 0750 "$dir/volumes$path"; chmod 0440 "$dir/volumes$path"/*
        binds+=("$dir/volumes$path $target ro") ;;
      *) die "$job: volume at $path is a $kind volume; the rehearsal knows emptyDir, persistentVolumeClaim, configMap and secret" ;;
    esac
    [ "$mode" = ro ] || writable+=("$target")
  done < "$work/manifests/$job.mounts"
  local -a env args
  mapfile -t env < <(pod_env "$pod" "$work/manifests/$job.env")
  mapfile -t args < "$work/manifests/$job.args"
  printf '%s\n' "${env[@]}" > "$work/$pod.env"
  {
    echo 'set -e'
    printf 'mount --bind -o ro %q %q\n' "$bin_dir" "$work/app"
    printf 'mount --bind -o ro %q %q\n' "$dotnet_root" "$work/dotnet"
    for b in "${binds[@]}"; do
      read -r source target mode <<< "$b"
      printf 'mount --bind %q %q\n' "$source" "$target"
      [ "$mode" = rw ] || printf 'mount -o remount,bind,ro %q\n' "$target"
    done
    if [ "$read_only" = true ]; then
      printf 'writable=(%s)\n' "$(printf '%q ' "${writable[@]}")"
      cat <<'EOS'
while read -r mount_point; do
  case "$mount_point" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
  keep=0; for w in "${writable[@]}"; do [ "$mount_point" != "$w" ] || keep=1; done
  [ "$keep" = 1 ] || mount -o remount,bind,ro "$mount_point" 2>/dev/null || true
done < <(findmnt -rn -o TARGET)
if [ -w / ]; then echo "rehearse-k8s: the root file system is still writable" >&2; exit 97; fi
EOS
    fi
    echo 'cd /'
    # env -i: the node sees the manifest's variables and nothing of this shell's (PATH, HOME and DOTNET_ROOT aside;
    # HOME is the image's, unwritable).
    printf 'exec setpriv --reuid=%q --regid=%q --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all -- ' "$uid" "$gid"
    printf 'env -i PATH=%q HOME=%q DOTNET_ROOT=%q ' "$PATH" "$root/home/dnm" "$work/dotnet"
    printf '%q ' "${env[@]}" "$work/app/$(basename "$dnm")" "${args[@]}"
    echo
  } > "$dir/start.sh"
}

declare -A pid_of
start() {
  local pod=$1 ns=dnm$id-$1
  ip netns exec "$ns" unshare --mount --propagation private bash "$work/pods/$pod/start.sh" > "$work/$pod.log" 2>&1 &
  pid_of[$pod]=$!
  pids+=($!)
}
mkdir -p "$root/home/dnm"
for pod in "${pods[@]}"; do pod_script "$pod"; done
for pod in "${pods[@]}"; do start "$pod"; done
say "started ${#pods[@]} nodes: ${pods[*]} (logs in $work); each as uid $(grep -E '^runAsUser=' "$work/manifests/dnm-coordinator.security" | cut -d= -f2), read-only root: $(grep -E '^readOnlyRootFilesystem=' "$work/manifests/dnm-coordinator.security" | cut -d= -f2)"

# --- partition (--partition-coordinator S): the coordinator's network link is cut for S seconds mid-run ---
# Its veth's host end goes down once the coordinator's /metrics shows a step past the first checkpoint (checkpoint-every
# 16), and up again S seconds later. Both sides' split-brain resolvers act (DNM_DOWN_AFTER): the coordinator, alone,
# is downed and starts a fresh actor system in its process, which resumes from the checkpoint; the workers down it,
# see no coordinator, and join the seeds again until it answers.
partition_log=$work/partition.log
if [ "$partition_s" -gt 0 ]; then
  (
    link=dv$id-0 # the coordinator is the first pod
    mport=$(grep -E '^DNM_METRICS_PORT=' "$work/manifests/dnm-coordinator.env" | cut -d= -f2)
    until [ "$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' _ "${ip_of[dnm-coordinator-0]}" "$mport" 2>/dev/null \
                | awk '/^dnm_train_steps_total/ {print int($2)}' | head -n 1)" -ge 18 ] 2>/dev/null; do sleep 0.5; done
    if [ "$partition_mode" = coordinator ]; then
      ip link set "$link" down && echo "partition: cut dnm-coordinator-0's link ($link) for ${partition_s}s at $(date +%T)"
      sleep "$partition_s"
      ip link set "$link" up && echo "partition: healed at $(date +%T)"
    else
      # Two halves: the second half's veths move to a bridge of their own, so each half still reaches its own nodes.
      half=$(( (${#pods[@]} + 1) / 2 ))
      ip link add "$bridge2" type bridge && ip link set "$bridge2" up
      for k in $(seq "$half" $(( ${#pods[@]} - 1 ))); do ip link set "dv$id-$k" master "$bridge2"; done
      echo "partition: split ${pods[*]:0:$half} | ${pods[*]:$half} for ${partition_s}s at $(date +%T)"
      sleep "$partition_s"
      for k in $(seq "$half" $(( ${#pods[@]} - 1 ))); do ip link set "dv$id-$k" master "$bridge"; done
      echo "partition: healed at $(date +%T)"
    fi
  ) > "$partition_log" 2>&1 &
  pids+=($!)
fi

# --- watch: scrape like the PodMonitor and the probes, until the coordinator ends ---
http_status() { # host port path -> the status code, or nothing
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$3" "$1" >&3 && head -n 1 <&3' _ "$1" "$2" "$3" 2>/dev/null | awk '{print $2}'
}
http_body() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$3" "$1" >&3 && cat <&3' _ "$1" "$2" "$3" 2>/dev/null | tr -d '\r' | sed '1,/^$/d'
}
metrics_port=$(grep -E '^DNM_METRICS_PORT=' "$work/manifests/dnm-worker.env" | cut -d= -f2)
declare -A healthy ready
coordinator=dnm-coordinator-0
deadline=$((SECONDS + timeout_s))
steps_seen=0
while kill -0 "${pid_of[$coordinator]}" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$work"/*.log; die "the run did not finish within ${timeout_s}s"; }
  for pod in "${pods[@]}"; do
    if ! kill -0 "${pid_of[$pod]}" 2>/dev/null && [ "$pod" != "$coordinator" ]; then
      wait "${pid_of[$pod]}" && rc=0 || rc=$?
      if [ "$rc" != 0 ]; then
        echo "--- $pod.log"; tail -n 40 "$work/$pod.log"
        die "$pod exited with status $rc before the coordinator finished"
      fi
    fi
    # Probed until they have answered 200 once (the kubelet keeps probing; once is what this rehearsal checks).
    if [ -z "${healthy[$pod]:-}" ] && [ "$(http_status "${ip_of[$pod]}" "$metrics_port" /healthz)" = 200 ]; then healthy[$pod]=1; fi
    if [ -z "${ready[$pod]:-}" ] && [ "$(http_status "${ip_of[$pod]}" "$metrics_port" /readyz)" = 200 ]; then ready[$pod]=1; fi
  done
  s=$(http_body "${ip_of[$coordinator]}" "$metrics_port" /metrics | awk '/^dnm_train_steps_total/ {print int($2)}' | head -n 1 || true)
  if [ -n "$s" ] && [ "$s" -gt "$steps_seen" ]; then steps_seen=$s; fi
  sleep 1
done
wait "${pid_of[$coordinator]}" && rc=0 || rc=$?
if [ "$rc" != 0 ]; then
  for pod in "${pods[@]}"; do echo "--- $pod.log"; tail -n 30 "$work/$pod.log"; done
  die "$coordinator exited with status $rc"
fi
# The workers end when the run does. A worker that was not in the cluster when the run ended (one the split-brain
# resolver downed, still rejoining) never hears of the end: on Kubernetes the worker Job's successPolicy
# (succeededCount 1) completes the Job once another worker exited 0, and the Job controller stops the rest with
# SIGTERM. So here: such a worker gets SIGTERM once a worker has succeeded, and must exit within the pods'
# terminationGracePeriodSeconds with 0 or the manifests' stop-exit-code (which the podFailurePolicy ignores).
stop_code=$(grep -E '^DNM_STOP_EXIT_CODE=' "$work/manifests/dnm-worker.env" | cut -d= -f2)
stop_code=${stop_code:-0}
grace=$(cat "$work/manifests/dnm-worker.grace" 2>/dev/null || echo 60)
succeeded=0
stopped_by_job=()
declare -A worker_rc
for pod in "${pods[@]}"; do
  if [ "$pod" = "$coordinator" ]; then continue; fi
  for _ in $(seq 1 60); do kill -0 "${pid_of[$pod]}" 2>/dev/null || break; sleep 1; done
  if kill -0 "${pid_of[$pod]}" 2>/dev/null; then continue; fi
  wait "${pid_of[$pod]}" && rc=0 || rc=$?
  worker_rc[$pod]=$rc
  [ "$rc" = 0 ] || { tail -n 40 "$work/$pod.log"; die "$pod exited with status $rc"; }
  succeeded=$((succeeded + 1))
done
for pod in "${pods[@]}"; do
  if [ "$pod" = "$coordinator" ] || [ -n "${worker_rc[$pod]:-}" ]; then continue; fi
  [ "$succeeded" -gt 0 ] || { tail -n 20 "$work/$pod.log"; die "$pod did not exit within 60s of the run's end, and no worker succeeded"; }
  say "$pod is still running 60s after the run's end; the worker Job has succeeded, so it is stopped (SIGTERM) as Kubernetes would"
  kill -TERM "${pid_of[$pod]}"
  for _ in $(seq 1 "$grace"); do kill -0 "${pid_of[$pod]}" 2>/dev/null || break; sleep 1; done
  if kill -0 "${pid_of[$pod]}" 2>/dev/null; then tail -n 20 "$work/$pod.log"; die "$pod did not exit within ${grace}s of SIGTERM"; fi
  wait "${pid_of[$pod]}" && rc=0 || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = "$stop_code" ] || { tail -n 40 "$work/$pod.log"; die "$pod exited with status $rc after SIGTERM (expected 0 or $stop_code)"; }
  worker_rc[$pod]=$rc
  stopped_by_job+=("$pod")
done

# --- what a finished run looks like ---
log=$work/$coordinator.log
grep -q "run finished" "$log" || die "the coordinator's log has no 'run finished'"
run_dir=$root$out
for f in final-metrics.json metrics.jsonl checkpoints/final.ckpt config.json; do
  [ -s "$run_dir/$f" ] || die "the run directory lacks $f"
done
# Every worker took part: the coordinator formed a world of all of them, and each ran to the run's last step.
grep -Eq "membership epoch [0-9]+: $workers worker\(s\)" "$log" || die "the coordinator never formed a world of all $workers workers"
total=$(grep -oE 'run finished: [0-9]+ steps' "$log" | grep -oE '[0-9]+' | head -n 1)
for pod in "${pods[@]}"; do
  if [ "$pod" = "$coordinator" ] || [[ " ${stopped_by_job[*]} " == *" $pod "* ]]; then continue; fi
  grep -q "run finished at global step $total" "$work/$pod.log" || { tail -n 20 "$work/$pod.log"; die "$pod did not finish at global step $total"; }
done
# Only a partition may leave a worker outside the cluster at the end.
[ "${#stopped_by_job[@]}" = 0 ] || [ "$partition_s" -gt 0 ] || die "worker(s) ${stopped_by_job[*]} never heard of the run's end"
for pod in "${pods[@]}"; do
  [ -n "${healthy[$pod]:-}" ] || die "$pod never answered /healthz with 200 on port $metrics_port"
  [ -n "${ready[$pod]:-}" ] || die "$pod never answered /readyz with 200 on port $metrics_port"
done
[ "$steps_seen" -gt 0 ] || die "the coordinator's /metrics never showed dnm_train_steps_total above 0"
if [ "$partition_s" -gt 0 ]; then
  grep -q "partition: healed" "$partition_log" || die "the partition never happened or never healed: $(cat "$partition_log")"
  cat "$partition_log"
  if [ "$partition_mode" = coordinator ]; then
    for pod in "${pods[@]}"; do
      [ "$pod" = "$coordinator" ] && continue
      grep -q "rejoining: " "$work/$pod.log" || die "$pod never rejoined after the partition"
    done
    say "partition: every worker rejoined; the coordinator: $(grep -cE 'rejoining: ' "$log") rejoin(s), $(grep -oE 'resumed from [^ ]+' "$log" | tail -n 1)"
  else
    # The resolver downs one half: every node of that half rejoins with a fresh actor system; the other half's stay.
    half=$(( (${#pods[@]} + 1) / 2 ))
    rejoined_first=(); rejoined_second=()
    for k in "${!pods[@]}"; do
      grep -q "rejoining: " "$work/${pods[$k]}.log" || continue
      if [ "$k" -lt "$half" ]; then rejoined_first+=("${pods[$k]}"); else rejoined_second+=("${pods[$k]}"); fi
    done
    if [ "${#rejoined_first[@]}" = "$half" ]; then side="${pods[*]:0:$half}"
    elif [ "${#rejoined_second[@]}" = $(( ${#pods[@]} - half )) ]; then side="${pods[*]:$half}"
    else die "after the 2|2 partition no half rejoined whole: rejoined ${rejoined_first[*]} ${rejoined_second[*]}"; fi
    # Back in the run, not only trying: each trained on to the run's last step (checked above), none had to be stopped.
    [ "${#stopped_by_job[@]}" = 0 ] || die "after the 2|2 partition ${stopped_by_job[*]} never got back into the run before it ended"
    say "partition: the downed half ($side) rejoined on its own and trained to the end; the coordinator $(grep -oE 'resumed from [^ ]+' "$log" | tail -n 1 || echo 'kept running')"
  fi
fi
say "final metrics: $(tr -d '\n ' < "$run_dir/final-metrics.json")"
# The files the nodes wrote are the nodes' user's: they ran as it, not as root.
owner=$(stat -c %u:%g "$run_dir/final-metrics.json")
expected=$(grep -E '^runAsUser=' "$work/manifests/dnm-coordinator.security" | cut -d= -f2):$(grep -E '^runAsGroup=' "$work/manifests/dnm-coordinator.security" | cut -d= -f2)
[ "$owner" = "$expected" ] || die "the run directory's files belong to $owner, not to the manifests' user $expected"
[ "${#stopped_by_job[@]}" = 0 ] || say "stopped by the worker Job's success policy after the run's end: ${stopped_by_job[*]} (exit status $(for p in "${stopped_by_job[@]}"; do printf '%s ' "${worker_rc[$p]}"; done| xargs))"
say "OK: ${#pods[@]} nodes (1 coordinator, $workers workers) in their own network namespaces trained $total steps; every node healthy and ready; coordinator /metrics showed $steps_seen steps; every node exited 0 or was stopped as the Job would stop it (both Jobs complete), running as $expected without capabilities, root file system read-only: $(grep -E '^readOnlyRootFilesystem=' "$work/manifests/dnm-coordinator.security" | cut -d= -f2)"
