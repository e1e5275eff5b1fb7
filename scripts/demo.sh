#!/usr/bin/env bash
# The main job in one command, as a platform team sees it, on this machine:
#   act 1, the operator: a real registry (CNCF distribution, Debian's docker-registry) and a local
#     Kubernetes control plane (scripts/cluster.sh: etcd, kube-apiserver, kube-controller-manager),
#     the CRDs and the Helm chart's ServiceAccount and RBAC, `registry-operator run` with that
#     ServiceAccount's token, an external Registry, a RetentionPolicy in Plan (its candidates and
#     their reasons), a Deployment that pins an old image, the policy switched to Enforce, and
#     what is left in the registry;
#   act 2, the CLI: `registry-operator retention plan` and `apply` against a second registry.
# Act 1 needs Go (the control plane is built from Go modules); without it the demo says so and
# runs act 2 alone. The operator is the debug binary (`cargo build`, the build the tests share).
# Everything it starts — registries, control plane, operator — is stopped by its PID on any exit
# (failure and Ctrl-C included) and the temporary directory is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPOS=${DEMO_REPOS:-20}
TAGS=${DEMO_TAGS:-12}
STARTED=$SECONDS

# free_port, apply_crds, apply_chart_rbac, sa_kubeconfig, end_pids
. scripts/operator-env.sh
say() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }

cat <<'EOF'
registry-operator demo: act 1, the operator on a local control plane; act 2, the CLI.
Warm (the operator built, the control plane's binaries cached) it takes about a minute.
On a cold machine the first run builds first, both builds at once: the operator (cargo,
debug) and the control plane from Go modules (~1 GB of modules). The whole cold first run
took 15 min on an idle 2-core machine (the control plane's build 14.6 min of it); on a busy
one the Go build alone has taken 54 min.
EOF

ACT1=1
WHY=""
if ! command -v go >/dev/null 2>&1; then
  ACT1=0
  WHY="Go is not installed (or not on PATH): act 1 needs the local Kubernetes control plane, \
which scripts/cluster.sh builds from Go modules (Go 1.26, https://go.dev/dl/). Running act 2, \
the CLI, alone."
  say "$WHY"
fi

# Act 1 also needs openssl (the control plane's certificates), helm (the chart's RBAC) and kubectl.
if [ "$ACT1" = 1 ]; then
  SETUP_TEST_TOOLS=0 SETUP_CLUSTER_TOOLS=1 scripts/setup.sh
else
  SETUP_TEST_TOOLS=0 scripts/setup.sh
fi
tool() { if [ -x ".tools/bin/$1" ]; then echo "$PWD/.tools/bin/$1"; else command -v "$1"; fi; }

base=/tmp; [ -w /dev/shm ] && base=/dev/shm
DIR=$(mktemp -d "$base/registry-operator-demo.XXXXXX")
PIDS=()
CLUSTER=""
BUILD_PID=""
cleanup() {
  if [ -n "$BUILD_PID" ] && kill -0 "$BUILD_PID" 2>/dev/null; then
    kill -- "-$BUILD_PID" 2>/dev/null || kill "$BUILD_PID" 2>/dev/null || true
  fi
  end_pids "${PIDS[@]}"
  if [ -n "$CLUSTER" ]; then scripts/cluster.sh stop "$CLUSTER" || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The control plane's binaries build (once; cached after) in the background while cargo builds
# the operator, in their own process group so an early exit ends the whole Go build.
if [ "$ACT1" = 1 ]; then
  set -m
  scripts/cluster.sh build >"$DIR/cluster-build.log" 2>&1 &
  BUILD_PID=$!
  set +m
fi

say "building the operator (cargo build: the debug binary)"
cargo build --quiet --bin registry-operator
# Where cargo put it: CARGO_TARGET_DIR or the workspace's target directory.
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$TARGET_DIR/debug/registry-operator

if [ "$ACT1" = 1 ]; then
  if kill -0 "$BUILD_PID" 2>/dev/null; then
    say "waiting for the control plane's build (scripts/cluster.sh build; once, cached after)"
  fi
  if ! wait "$BUILD_PID"; then
    BUILD_PID=""
    cat "$DIR/cluster-build.log" >&2
    echo "demo: the local control plane could not be built (above); act 1 needs it" >&2
    exit 1
  fi
  BUILD_PID=""
  grep -h '^cluster: built' "$DIR/cluster-build.log" | sed 's/^/    /' || true
fi


# start_registry NAME: docker-registry on a free port with storage in $DIR/NAME; sets URL.
start_registry() {
  local name=$1 port pid
  port=$(free_port)
  URL="http://127.0.0.1:$port"
  mkdir -p "$DIR/$name"
  cat >"$DIR/$name/config.yml" <<CONF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $DIR/$name/data}
  delete: {enabled: true}
http: {addr: "127.0.0.1:$port", secret: demo-only}
CONF
  docker-registry serve "$DIR/$name/config.yml" >"$DIR/$name/registry.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$URL/v2/" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$DIR/$name/registry.log"; exit 1; }
    sleep 0.1
  done
  note "docker-registry $URL (pid $pid, storage $DIR/$name/data)"
}

list() { # URL: the registry's content, one line per repository
  python3 - "$1" <<'PY'
import json, sys, urllib.request
url = sys.argv[1]
repos = json.load(urllib.request.urlopen(url + "/v2/_catalog?n=1000"))["repositories"] or []
total = 0
for r in repos:
    tags = json.load(urllib.request.urlopen(f"{url}/v2/{r}/tags/list"))["tags"] or []
    total += len(tags)
    print(f"  {r:28} {len(tags):3} tags  {' '.join(sorted(tags, key=lambda t: (len(t), t)))}")
print(f"  {len(repos)} repositories, {total} tags")
PY
}

# waits (at most $2 s) until the command $3… succeeds; fails naming $1
wait_until() {
  local what=$1 limit=$2 deadline
  shift 2
  deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge "$deadline" ]; then echo "demo: $what did not happen within $limit s" >&2; return 1; fi
    sleep 0.2
  done
}

act1() {
  local kubectl helm kc sakc opport oppid host
  kubectl=$(tool kubectl)
  helm=$(tool helm)
  CLUSTER=$DIR/cluster
  kc=$CLUSTER/kubeconfig
  k() { "$kubectl" --kubeconfig "$kc" "$@"; }

  say "act 1: the operator. Starting the local control plane (scripts/cluster.sh start)"
  note "etcd, kube-apiserver (TLS, RBAC, audit log) and kube-controller-manager on 127.0.0.1;"
  note "no scheduler, no kubelet: Pods are created but do not run"
  scripts/cluster.sh start "$CLUSTER"
  k version | sed 's/^/    /'

  say "kubectl apply -f crds/ (Registry, RetentionPolicy, ClusterRetentionPolicy)"
  apply_crds "$kubectl" "$kc" | sed 's/^/    /'

  say "the chart's ServiceAccount and RBAC (helm template charts/registry-operator | kubectl apply)"
  apply_chart_rbac "$kubectl" "$helm" "$kc" | sed 's/^/    /'

  # A kubeconfig that authenticates with a token of the ServiceAccount, as a Pod's would.
  sakc=$DIR/operator.kubeconfig
  sa_kubeconfig "$kubectl" "$kc" "$CLUSTER" "$sakc"
  note "the operator's kubeconfig holds a token of that ServiceAccount (kubectl auth whoami):"
  KUBECONFIG=$sakc "$kubectl" auth whoami | sed 's/^/    /'

  say "registry-operator run (leader election on a Lease, as the chart runs it)"
  opport=$(free_port)
  KUBECONFIG=$sakc "$BIN" run --log-format text --http-listen "127.0.0.1:$opport" \
    --leader-elect --leader-election-namespace registry-operator --identity demo-0 \
    >"$DIR/operator.log" 2>&1 &
  oppid=$!
  PIDS+=("$oppid")
  op_alive() { kill -0 "$oppid" 2>/dev/null || { tail -n 20 "$DIR/operator.log" >&2; return 1; }; }
  wait_until "the operator's /readyz" 60 curl -fsS "http://127.0.0.1:$opport/readyz" || { op_alive; exit 1; }
  wait_until "the operator to lead" 60 sh -c \
    "'$kubectl' --kubeconfig '$kc' -n registry-operator get lease registry-operator -o jsonpath='{.spec.holderIdentity}' | grep -qx demo-0"
  note "pid $oppid, $BIN (debug build), log $DIR/operator.log, metrics http://127.0.0.1:$opport/metrics"

  say "a real registry, seeded with $REPOS repositories x $TAGS tags (one day apart; aliases, multi-arch indexes)"
  start_registry act1
  host=${URL#http://}
  "$BIN" dev seed --registry "$URL" --repos "$REPOS" --tags "$TAGS" | sed 's/^/    /'

  say "an external Registry for it (kubectl get reg)"
  k create namespace demo >/dev/null
  k apply -f - <<EOF | sed 's/^/    /'
apiVersion: registry-operator.dev/v1alpha1
kind: Registry
metadata: {name: local, namespace: demo}
spec:
  external: {url: "$URL"}
EOF
  k -n demo wait --for=condition=Ready registry/local --timeout=60s >/dev/null
  k -n demo get reg | sed 's/^/    /'

  say "examples/demo-policy.yaml in mode Plan (kubectl get rp): nothing is deleted"
  sed 's/^  mode: Enforce.*/  mode: Plan/' examples/demo-policy.yaml | k apply -f - | sed 's/^/    /'
  k -n demo wait --for=jsonpath='{.status.lastRun.mode}'=Plan rp/demo-cleanup --timeout=120s >/dev/null
  k -n demo get rp | sed 's/^/    /'
  note "$(k -n demo get rp demo-cleanup -o jsonpath='{.status.lastRun.message}')"
  note "the first candidates, with their reasons (status.candidates, up to 100):"
  local candidates
  candidates=$(k -n demo get rp demo-cleanup \
    -o jsonpath='{range .status.candidates[*]}{.repository}:{.tag}{"  "}{.reason}{"\n"}{end}')
  sed -n '1,6s/^/      /p' <<<"$candidates"

  local pin_repo pin_tag pin_digest pin pod container
  pin_repo=$(k -n demo get rp demo-cleanup -o jsonpath='{.status.candidates[0].repository}')
  pin_tag=$(k -n demo get rp demo-cleanup -o jsonpath='{.status.candidates[0].tag}')
  pin_digest=$(k -n demo get rp demo-cleanup -o jsonpath='{.status.candidates[0].digest}')
  pin="$host/$pin_repo:$pin_tag"
  say "a Deployment that still runs one of them: $pin"
  k -n demo create deployment legacy-api --image="$pin" | sed 's/^/    /'
  wait_until "the ReplicaSet controller to create legacy-api's Pod" 60 sh -c \
    "'$kubectl' --kubeconfig '$kc' -n demo get pods -l app=legacy-api -o name | grep -q ."
  pod=$(k -n demo get pods -l app=legacy-api -o jsonpath='{.items[0].metadata.name}')
  container=$(k -n demo get pod "$pod" -o jsonpath='{.spec.containers[0].name}')
  note "no kubelet runs here: the demo writes Pod $pod's status as a kubelet would once its"
  note "container runs (phase Running, the image's digest as imageID)"
  k -n demo patch pod "$pod" --subresource=status --type=merge -p "{\"status\": {\"phase\": \"Running\",
    \"containerStatuses\": [{\"name\": \"$container\", \"image\": \"$pin\", \"imageID\": \"$host/$pin_repo@$pin_digest\",
    \"ready\": true, \"restartCount\": 0, \"started\": true, \"state\": {\"running\": {\"startedAt\": \"2026-01-01T00:00:00Z\"}}}]}}" >/dev/null
  # The operator's index of images in use has the Deployment, its ReplicaSet and the Pod.
  wait_until "the operator to see the Pod" 30 sh -c \
    "curl -fsS http://127.0.0.1:$opport/metrics | awk '\$1 == \"registry_operator_in_use_objects\" && \$2 >= 3 { ok = 1 } END { exit !ok }'"

  say "the policy switched to Enforce (kubectl patch rp demo-cleanup: spec.mode Enforce)"
  k -n demo patch rp demo-cleanup --type=merge -p '{"spec": {"mode": "Enforce"}}' | sed 's/^/    /'
  k -n demo wait --for=jsonpath='{.status.lastRun.mode}'=Enforce rp/demo-cleanup --timeout=300s >/dev/null
  k -n demo get rp | sed 's/^/    /'
  note "$(k -n demo get rp demo-cleanup -o jsonpath='{.status.lastRun.message}')"
  note "Ready: $(k -n demo get rp demo-cleanup -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}: {.status.conditions[?(@.type=="Ready")].message}')"
  note "the run's counts (status.lastRun): $(k -n demo get rp demo-cleanup -o jsonpath='kept {.status.lastRun.kept}, protected {.status.lastRun.protected}, deleted {.status.lastRun.deleted}')"
  note "the protected one is $pin, the Deployment's image (protect.inUse: a Pod or workload"
  note "runs it); it is no candidate, so the run left it alone"
  if curl -fsS "$URL/v2/$pin_repo/tags/list" | python3 -c 'import json, sys; sys.exit(sys.argv[1] not in (json.load(sys.stdin)["tags"] or []))' "$pin_tag"; then
    note "the registry still has $pin_repo:$pin_tag"
  else
    echo "demo: $pin_repo:$pin_tag, which the Deployment runs, was deleted" >&2
    exit 1
  fi
  note "the policy's Events:"
  k -n demo get events --field-selector involvedObject.name=demo-cleanup \
    -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message --no-headers | cut -c1-160 | sed 's/^/      /'

  say "what is left in the registry"
  list "$URL"
  say "stopping the operator (pid $oppid)"
  kill "$oppid"
  wait "$oppid" 2>/dev/null || true
}

act2() {
  say "act 2: the CLI, against a second registry: no cluster, the same engine"
  start_registry act2
  "$BIN" dev seed --registry "$URL" --repos "$REPOS" --tags "$TAGS" | sed 's/^/    /'
  echo "==> before"
  list "$URL" | tail -n 4

  echo "==> registry-operator retention plan --registry $URL --policy examples/demo-policy.yaml"
  "$BIN" retention plan --registry "$URL" --policy examples/demo-policy.yaml >"$DIR/plan.txt"
  head -n 12 "$DIR/plan.txt"
  echo "  ... ($(wc -l <"$DIR/plan.txt") lines)"
  tail -n 3 "$DIR/plan.txt"

  echo "==> registry-operator retention apply --registry $URL --policy examples/demo-policy.yaml"
  "$BIN" retention apply --registry "$URL" --policy examples/demo-policy.yaml >"$DIR/apply.txt"
  tail -n 4 "$DIR/apply.txt"

  echo "==> after"
  list "$URL"
}

if [ "$ACT1" = 1 ]; then act1; fi
act2
say "done in $((SECONDS - STARTED)) s; stopping what the demo started (by PID) and removing $DIR"
