#!/usr/bin/env bash
# The operator at scale: `registry-operator run` (release build) on the local control plane
# (scripts/cluster.sh: etcd, kube-apiserver, kube-controller-manager), as the chart's
# ServiceAccount under the chart's RBAC, with one RetentionPolicy in mode Plan over the
# synthetic registry (crates/synthetic-registry) — 10,000 repositories x 100 tags by default,
# 1,000,000 tags. Prints the run's wall time (from the policy's creation to its status), the
# operator's peak resident memory (VmHWM, read every 0.2 s) against the chart's limit of
# 256 MiB, and what the policy's status says.
#   OPSCALE_REPOS=10000 OPSCALE_TAGS=100 OPSCALE_TIMEOUT=1800 scripts/bench-operator-scale.sh
# Bounded: the run has OPSCALE_TIMEOUT seconds (default 1800); everything started here is
# stopped by its PID when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."
REPOS=${OPSCALE_REPOS:-10000}
TAGS=${OPSCALE_TAGS:-100}
LIMIT=${OPSCALE_TIMEOUT:-1800}
LIMIT_MIB=256

# free_port, apply_crds, apply_chart_rbac, sa_kubeconfig, end_pids
. scripts/operator-env.sh
SETUP_TEST_TOOLS=0 SETUP_CLUSTER_TOOLS=1 scripts/setup.sh
tool() { if [ -x ".tools/bin/$1" ]; then echo "$PWD/.tools/bin/$1"; else command -v "$1"; fi; }
kubectl=$(tool kubectl)
helm=$(tool helm)

base=/tmp; [ -w /dev/shm ] && base=/dev/shm
DIR=$(mktemp -d "$base/registry-operator-opscale.XXXXXX")
PIDS=()
CLUSTER=""
cleanup() {
  end_pids "${PIDS[@]}"
  if [ -n "$CLUSTER" ]; then scripts/cluster.sh stop "$CLUSTER" || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

scripts/cluster.sh build >"$DIR/cluster-build.log" 2>&1 || {
  cat "$DIR/cluster-build.log" >&2
  echo "bench-operator-scale: the local control plane could not be built (above)" >&2
  exit 1
}
cargo build --quiet --release --bin registry-operator -p registry-operator
cargo build --quiet --release -p synthetic-registry
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$TARGET_DIR/release/registry-operator
SYNTH=$TARGET_DIR/release/synthetic-registry

hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

CLUSTER=$DIR/cluster
kc=$CLUSTER/kubeconfig
k() { "$kubectl" --kubeconfig "$kc" "$@"; }
scripts/cluster.sh start "$CLUSTER" >/dev/null
apply_crds "$kubectl" "$kc" >/dev/null
apply_chart_rbac "$kubectl" "$helm" "$kc" >/dev/null
sakc=$DIR/operator.kubeconfig
sa_kubeconfig "$kubectl" "$kc" "$CLUSTER" "$sakc"

"$SYNTH" --repos "$REPOS" --tags "$TAGS" --seconds $((LIMIT + 300)) >"$DIR/synthetic.out" 2>"$DIR/synthetic.err" &
PIDS+=("$!")
for _ in $(seq 1 100); do [ -s "$DIR/synthetic.out" ] && break; sleep 0.1; done
URL=$(head -n 1 "$DIR/synthetic.out")
[ -n "$URL" ] || { cat "$DIR/synthetic.err" >&2; exit 1; }

opport=$(free_port)
KUBECONFIG=$sakc "$BIN" run --log-format text --http-listen "127.0.0.1:$opport" \
  --leader-elect --leader-election-namespace registry-operator --identity opscale-0 \
  >"$DIR/operator.log" 2>&1 &
oppid=$!
PIDS+=("$oppid")
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "http://127.0.0.1:$opport/readyz" 2>/dev/null && break
  kill -0 "$oppid" 2>/dev/null || { tail -n 20 "$DIR/operator.log" >&2; exit 1; }
  sleep 0.2
done
idle_kib=$(rss_kib "$oppid")

k create namespace bench >/dev/null
k apply -f - >/dev/null <<EOF
apiVersion: registry-operator.dev/v1alpha1
kind: Registry
metadata: {name: synthetic, namespace: bench}
spec:
  external: {url: "$URL"}
EOF
k -n bench wait --for=condition=Ready registry/synthetic --timeout=60s >/dev/null
# The scale benchmark's policy: keep `latest` and the 3 newest per repository, default limits.
start=$SECONDS
k apply -f examples/scale-policy.yaml >/dev/null
peak=0
done_run=""
while [ $((SECONDS - start)) -lt "$LIMIT" ]; do
  kill -0 "$oppid" 2>/dev/null || { tail -n 20 "$DIR/operator.log" >&2; echo "bench-operator-scale: the operator ended" >&2; exit 1; }
  h=$(hwm_kib "$oppid")
  [ "$h" -gt "$peak" ] && peak=$h
  if k -n bench get rp scale -o jsonpath='{.status.lastRun.completionTime}' 2>/dev/null | grep -q .; then
    done_run=1
    break
  fi
  sleep 0.2
done
wall=$((SECONDS - start))
h=$(hwm_kib "$oppid"); [ "$h" -gt "$peak" ] && peak=$h
after_kib=$(rss_kib "$oppid")
if [ -z "$done_run" ]; then
  echo "bench-operator-scale: no run finished within $LIMIT s" >&2
  tail -n 20 "$DIR/operator.log" >&2
  exit 1
fi
summary=$(k -n bench get rp scale -o jsonpath='{.status.lastRun.outcome}{" "}{.status.lastRun.repositories}{" "}{.status.lastRun.tags}{" "}{.status.lastRun.wouldDelete}{" "}{.status.lastRun.errors}')
read -r outcome repos tags would errors <<<"$summary"
message=$(k -n bench get rp scale -o jsonpath='{.status.lastRun.message}')
candidates=$(k -n bench get rp scale -o jsonpath='{range .status.candidates[*]}x{end}' | wc -c)
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
echo "operator run, one Plan-mode policy, synthetic registry $REPOS x $TAGS:"
echo "  status: outcome $outcome, $repos repositories, $tags tags, $would would be deleted, $errors errors, $candidates candidates"
echo "  message: $message"
echo "  wall (policy created -> status written): ${wall} s"
echo "  operator resident: $(mib "$idle_kib") before, peak $(mib "$peak") (limit $LIMIT_MIB MiB), $(mib "$after_kib") after"
if [ "$peak" -gt $((LIMIT_MIB * 1024)) ]; then
  echo "bench-operator-scale: the peak is over the chart's memory limit" >&2
  exit 1
fi
