#!/usr/bin/env bash
# cluster.sh — a local Kubernetes control plane for the tests: etcd, kube-apiserver and
# kube-controller-manager, built from the Go modules in tools/cluster/ and run on 127.0.0.1.
#
#   scripts/cluster.sh build                  build the binaries (once; cached, see below)
#   scripts/cluster.sh start DIR              build if needed, start all three, write DIR/kubeconfig
#   scripts/cluster.sh stop DIR               stop every process it started (by PID), remove DIR
#   scripts/cluster.sh pause DIR              SIGSTOP the API server (fault tests)
#   scripts/cluster.sh resume DIR             SIGCONT it
#   scripts/cluster.sh restart-apiserver DIR  stop the API server and start it again, same flags
#   scripts/cluster.sh bin-dir                print where the binaries are (after a build)
#
# The binaries are cached outside the checkout, in
# ${REGISTRY_OPERATOR_CLUSTER_CACHE:-${XDG_CACHE_HOME:-~/.cache}/registry-operator/cluster}/<key>,
# key = Kubernetes version, etcd version, Go version and the hash of both go.sum files; a second
# build with the same key does nothing. Go (1.26, GOTOOLCHAIN=local) must be installed; builds run
# at nice 19 with Go's own module and build caches.
#
# DIR gets: kubeconfig (a cluster admin: client certificate, O=system:masters), certs/, the pid
# files, each component's log, audit.log (every request, metadata level: who did what to which
# resource) and the ports (ports.env). The API server serves TLS on a free 127.0.0.1 port with
# RBAC authorisation, PodSecurity admission and ServiceAccount tokens; the controller-manager runs
# garbage collection, the workload controllers (Deployment, ReplicaSet, StatefulSet, …), namespace
# deletion and the ServiceAccount controllers. No scheduler, no kubelet: Pods stay Pending.
#
# Ports: free ones are picked; CLUSTER_ETCD_PORT, CLUSTER_ETCD_PEER_PORT, CLUSTER_APISERVER_PORT,
# CLUSTER_CONTROLLER_MANAGER_PORT choose them; CLUSTER_APISERVER_EXTRA_ARGS adds flags to the API
# server (split at spaces). On any failure (no Go, a module the Go proxy does
# not serve, a port taken, a component that dies or is not ready in time) the message names it,
# everything started so far is stopped and the exit status is not zero.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODULES=${CLUSTER_MODULES:-$ROOT/tools/cluster}
CACHE_ROOT=${REGISTRY_OPERATOR_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/registry-operator/cluster}
READY_TIMEOUT=${CLUSTER_READY_TIMEOUT:-90}
COMPONENTS=(etcd kube-apiserver kube-controller-manager)
MARKER=.registry-operator-cluster

die() { echo "cluster: $*" >&2; exit 1; }
say() { echo "cluster: $*" >&2; }

# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------

need_go() {
  command -v go >/dev/null 2>&1 || die "Go is not installed (or not on PATH): the test control plane \
(kube-apiserver, kube-controller-manager, etcd) is built from Go modules and needs Go 1.26 — \
install it from https://go.dev/dl/ or your distribution"
}

# The version a go.mod requires of a module.
required() { # go.mod module
  awk -v m="$2" '($1 == m || ($1 == "require" && $2 == m)) { v = ($1 == m) ? $2 : $3 } END { print v }' "$1"
}

k8s_version() { required "$MODULES/kubernetes/go.mod" k8s.io/kubernetes; }
etcd_version() { required "$MODULES/etcd/go.mod" go.etcd.io/etcd/server/v3; }

cache_key() {
  local go_version sums
  go_version=$(GOTOOLCHAIN=local go env GOVERSION)
  sums=$(cat "$MODULES/kubernetes/go.mod" "$MODULES/kubernetes/go.sum" "$MODULES/etcd/go.mod" \
    "$MODULES/etcd/go.sum" | sha256sum | cut -c1-16)
  echo "k8s-$(k8s_version)_etcd-$(etcd_version)_${go_version}_${sums}"
}

bin_dir() { echo "$CACHE_ROOT/$(cache_key)/bin"; }

build() {
  need_go
  local k8s etcd dir
  k8s=$(k8s_version)
  etcd=$(etcd_version)
  [ -n "$k8s" ] || die "no k8s.io/kubernetes version in $MODULES/kubernetes/go.mod"
  [ -n "$etcd" ] || die "no go.etcd.io/etcd/server/v3 version in $MODULES/etcd/go.mod"
  dir=$CACHE_ROOT/$(cache_key)
  if [ -x "$dir/bin/kube-apiserver" ] && [ -x "$dir/bin/kube-controller-manager" ] && [ -x "$dir/bin/etcd" ]; then
    return 0
  fi
  mkdir -p "$dir"
  # One build at a time per key (two test runs may start together).
  exec 9>"$dir/.lock"
  flock 9
  if [ -x "$dir/bin/kube-apiserver" ] && [ -x "$dir/bin/kube-controller-manager" ] && [ -x "$dir/bin/etcd" ]; then
    exec 9>&-
    return 0
  fi
  local minor=${k8s#v1.}
  minor=${minor%%.*}
  local pkg=k8s.io/component-base/version cg=k8s.io/client-go/pkg/version
  local ldflags="-s -w -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor \
-X $pkg.gitTreeState=clean -X $cg.gitVersion=$k8s -X $cg.gitMajor=1 -X $cg.gitMinor=$minor"
  local tmp="$dir/bin.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  say "building kube-apiserver and kube-controller-manager $k8s and etcd $etcd with $(GOTOOLCHAIN=local go env GOVERSION) (once: a cold machine downloads ~1 GB of modules, and the compile took 50 min on a busy 2-core machine)"
  local start=$SECONDS
  # -mod=readonly: go.sum is the pin; a module the proxy does not serve fails here, named by go.
  if ! (cd "$MODULES/kubernetes" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly \
    nice -n 19 go build -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager); then
    rm -rf "$tmp"
    die "building kube-apiserver/kube-controller-manager $k8s from $MODULES/kubernetes failed (go's error above)"
  fi
  if ! (cd "$MODULES/etcd" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly \
    nice -n 19 go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3); then
    rm -rf "$tmp"
    die "building etcd $etcd from $MODULES/etcd failed (go's error above)"
  fi
  rm -rf "$dir/bin"
  mv "$tmp" "$dir/bin"
  exec 9>&-
  say "built in $((SECONDS - start)) s: $dir/bin"
}

# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

# A free loopback TCP port (the kernel's pick), or the one the variable names if it is free.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { # VAR
  local want=${!1:-}
  if [ -n "$want" ]; then
    port_free "$want" || die "port 127.0.0.1:$want ($1) is taken"
    echo "$want"
    return
  fi
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pid_of() { # DIR component -> pid, if its pid file names a live process running that binary
  local f="$1/$2.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  # Guard against a reused PID: the process must run this component's binary. (Read into a
  # variable: a `| grep -q` pipeline can fail with SIGPIPE under pipefail.)
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"/$2 "* ]] || return 1
  echo "$pid"
}

stop_component() { # DIR component
  local pid
  pid=$(pid_of "$1" "$2") || { rm -f "$1/$2.pid"; return 0; }
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    [ -d "/proc/$pid" ] || break
    # A zombie of ours has exited.
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
    sleep 0.1
  done
  if [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
    say "$2 (pid $pid) did not stop in 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$1/$2.pid"
}

stop_all() { # DIR
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    stop_component "$1" "${COMPONENTS[$i]}"
  done
}

# Starts a component in the background, detached from the terminal's signals, and records its
# pid; its flags are kept in DIR/<component>.args for restart-apiserver.
launch() { # DIR component args...
  local dir=$1 name=$2
  shift 2
  printf '%s\n' "$@" >"$dir/$name.args"
  setsid "$BIN/$name" "$@" >>"$dir/$name.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/$name.pid"
  # Until the forked shell has exec'd the binary, /proc/PID shows this script, and pid_of would
  # take the component for exited (a race a busy machine loses a few times in a hundred). Wait,
  # bounded, for the exec, or for the process to end (wait_ready then reports it with its log).
  local want
  want=$(readlink -f "$BIN/$name")
  for _ in $(seq 1 500); do
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$want" ] && return 0
    [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 0
    sleep 0.01
  done
}

# Waits until `probe` succeeds; fails naming the component when it exits or is not ready in time.
wait_ready() { # DIR component probe...
  local dir=$1 name=$2
  shift 2
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ! pid_of "$dir" "$name" >/dev/null; then
      local pid status=""
      pid=$(cat "$dir/$name.pid" 2>/dev/null || true)
      # Started by this shell: its exit status is ours to read (a signal shows as 128+N).
      local state=gone
      if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone)
      fi
      if [ -n "$pid" ] && { [ "$state" = gone ] || [ "$state" = Z ]; }; then
        wait "$pid" 2>/dev/null && status=0 || status=$?
      elif [ -n "$pid" ]; then
        # Alive, but not (yet) running the component's binary: keep waiting.
        if [ $SECONDS -lt $deadline ]; then
          sleep 0.2
          continue
        fi
      fi
      echo "cluster: $name exited at start${status:+ (exit status $status)}; the end of $dir/$name.log:" >&2
      tail -n 15 "$dir/$name.log" >&2 || true
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "cluster: $name was not ready within ${READY_TIMEOUT} s; the end of $dir/$name.log:" >&2
      tail -n 15 "$dir/$name.log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

admin_curl() { # DIR url
  curl -sf --max-time 5 --cacert "$1/certs/ca.crt" --cert "$1/certs/admin.crt" --key "$1/certs/admin.key" "$2"
}

certs() { # DIR
  local c=$1/certs
  mkdir -p "$c"
  (
    cd "$c"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
      -subj "/CN=registry-operator-test-ca" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 \
      -extfile server.ext 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr \
      -subj "/O=system:masters/CN=cluster-admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 2 \
      -extfile client.ext 2>/dev/null
    # ServiceAccount token signing key pair.
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext ca.srl
  ) || die "openssl could not create the certificates in $c"
}

kubeconfig() { # DIR apiserver-port
  local c=$1/certs
  cat >"$1/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$2
    certificate-authority-data: $(base64 -w0 "$c/ca.crt")
users:
- name: cluster-admin
  user:
    client-certificate-data: $(base64 -w0 "$c/admin.crt")
    client-key-data: $(base64 -w0 "$c/admin.key")
contexts:
- name: local
  context: {cluster: local, user: cluster-admin}
current-context: local
EOF
  chmod 600 "$1/kubeconfig"
}

audit_policy() { # DIR
  # Metadata of every request once it is answered: user, verb, resource, subresource, code.
  cat >"$1/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
EOF
}

start_apiserver() { # DIR
  local dir=$1
  # shellcheck disable=SC1091
  . "$dir/ports.env"
  local c=$dir/certs
  # shellcheck disable=SC2086 # the extra flags are split at spaces on purpose
  launch "$dir" kube-apiserver \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --cert-dir="$c" --tls-cert-file="$c/server.crt" --tls-private-key-file="$c/server.key" \
    --client-ca-file="$c/ca.crt" \
    --authorization-mode=RBAC \
    --enable-admission-plugins=PodSecurity,ServiceAccount,NamespaceLifecycle \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$c/sa.pub" --service-account-signing-key-file="$c/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --audit-policy-file="$dir/audit-policy.yaml" --audit-log-path="$dir/audit.log" \
    --audit-log-format=json --audit-log-mode=blocking --audit-log-maxsize=0 \
    --profiling=false ${CLUSTER_APISERVER_EXTRA_ARGS:-}
}

wait_apiserver() { # DIR
  # shellcheck disable=SC1091
  . "$1/ports.env"
  wait_ready "$1" kube-apiserver admin_curl "$1" "https://127.0.0.1:$APISERVER_PORT/readyz"
}

start() { # DIR
  local dir=$1
  need_go
  if [ -f "$dir/$MARKER" ] && pid_of "$dir" kube-apiserver >/dev/null; then
    say "already running in $dir (kubeconfig: $dir/kubeconfig)"
    return 0
  fi
  if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ] && [ ! -f "$dir/$MARKER" ]; then
    die "$dir exists and is not a cluster directory of this script; pick an empty or new one"
  fi
  command -v openssl >/dev/null 2>&1 || die "openssl is needed for the control plane's certificates"
  command -v curl >/dev/null 2>&1 || die "curl is needed to check the control plane's health"
  build
  BIN=$(bin_dir)
  # Leftovers of an earlier run in this DIR: stop them first.
  [ -f "$dir/$MARKER" ] && stop_all "$dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  : >"$dir/$MARKER"
  # From here on, any failure stops what was started and removes DIR.
  trap 'rc=$?; if [ $rc -ne 0 ]; then stop_all "'"$dir"'"; say "start failed; nothing left running (logs were in '"$dir"')"; rm -rf "'"$dir"'"; fi' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  local etcd_port etcd_peer apiserver_port kcm_port
  etcd_port=$(pick_port CLUSTER_ETCD_PORT)
  etcd_peer=$(pick_port CLUSTER_ETCD_PEER_PORT)
  apiserver_port=$(pick_port CLUSTER_APISERVER_PORT)
  kcm_port=$(pick_port CLUSTER_CONTROLLER_MANAGER_PORT)
  printf 'ETCD_PORT=%s\nETCD_PEER_PORT=%s\nAPISERVER_PORT=%s\nCONTROLLER_MANAGER_PORT=%s\nBIN=%s\n' \
    "$etcd_port" "$etcd_peer" "$apiserver_port" "$kcm_port" "$BIN" >"$dir/ports.env"
  certs "$dir"
  audit_policy "$dir"
  kubeconfig "$dir" "$apiserver_port"

  launch "$dir" etcd --name=test --data-dir="$dir/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-cluster="test=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync --log-level=warn
  wait_ready "$dir" etcd curl -sf --max-time 2 "http://127.0.0.1:$etcd_port/health"

  start_apiserver "$dir"
  wait_apiserver "$dir"

  launch "$dir" kube-controller-manager \
    --kubeconfig="$dir/kubeconfig" --authentication-kubeconfig="$dir/kubeconfig" \
    --authorization-kubeconfig="$dir/kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$kcm_port" --leader-elect=false \
    --service-account-private-key-file="$dir/certs/sa.key" --root-ca-file="$dir/certs/ca.crt" \
    --use-service-account-credentials=true \
    --controllers='*' --concurrent-gc-syncs=5 --profiling=false
  wait_ready "$dir" kube-controller-manager curl -skf --max-time 2 "https://127.0.0.1:$kcm_port/healthz"
  # The ServiceAccount token controller has made the default ServiceAccount once this exists.
  local deadline=$((SECONDS + READY_TIMEOUT))
  until admin_curl "$dir" "https://127.0.0.1:$apiserver_port/api/v1/namespaces/default/serviceaccounts/default" >/dev/null 2>&1; do
    pid_of "$dir" kube-controller-manager >/dev/null || { tail -n 15 "$dir/kube-controller-manager.log" >&2; die "kube-controller-manager exited at start"; }
    [ $SECONDS -lt $deadline ] || die "kube-controller-manager made no default ServiceAccount within ${READY_TIMEOUT} s"
    sleep 0.2
  done
  trap - EXIT INT TERM
  say "running: API server https://127.0.0.1:$apiserver_port, kubeconfig $dir/kubeconfig"
}

stop() { # DIR
  local dir=$1
  [ -e "$dir" ] || return 0
  [ -f "$dir/$MARKER" ] || die "$dir is not a cluster directory of this script; not touching it"
  stop_all "$dir"
  rm -rf "$dir"
}

apiserver_pid() { # DIR
  pid_of "$1" kube-apiserver || die "no kube-apiserver of this script is running in $1"
}

cmd=${1:-}
case "$cmd" in
  build) build ;;
  bin-dir) need_go; bin_dir ;;
  start | stop | pause | resume | restart-apiserver)
    [ $# -eq 2 ] || die "usage: $0 $cmd DIR"
    DIR=$2
    case "$cmd" in
      start) start "$DIR" ;;
      stop) stop "$DIR" ;;
      pause) kill -STOP "$(apiserver_pid "$DIR")" ;;
      resume) kill -CONT "$(apiserver_pid "$DIR")" ;;
      restart-apiserver)
        [ -f "$DIR/$MARKER" ] || die "$DIR is not a cluster directory of this script"
        stop_component "$DIR" kube-apiserver
        # shellcheck disable=SC1091
        . "$DIR/ports.env"
        start_apiserver "$DIR"
        wait_apiserver "$DIR" || die "kube-apiserver did not come back"
        ;;
    esac
    ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
