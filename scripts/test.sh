#!/usr/bin/env bash
# The test command: set up a fresh machine (idempotent), then run every test of the workspace.
# Tests start their own real registries on 127.0.0.1 and stop them. The cluster-side tests share
# one local Kubernetes control plane (scripts/cluster.sh): its binaries are built from Go modules
# in the background while cargo compiles (once; cached after), it is started before the tests
# and stopped when this script exits, however it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.tools/bin:$PATH"

work=$(mktemp -d "${TMPDIR:-/tmp}/registry-operator-test.XXXXXX")
build_pid=""
cleanup() {
  if [ -n "$build_pid" ] && kill -0 "$build_pid" 2>/dev/null; then
    kill -- "-$build_pid" 2>/dev/null || kill "$build_pid" 2>/dev/null || true
  fi
  if [ -d "$work/cluster" ]; then scripts/cluster.sh stop "$work/cluster" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
# Interrupted (Ctrl-C, a CI timeout): exit, so the EXIT trap stops what was started.
trap 'exit 130' INT
trap 'exit 143' TERM

# In its own process group (set -m) so an early exit can end the whole Go build.
set -m
scripts/cluster.sh build >"$work/cluster-build.log" 2>&1 &
build_pid=$!
set +m

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --no-run --quiet

if ! wait "$build_pid"; then
  build_pid=""
  cat "$work/cluster-build.log" >&2
  echo "test: the local control plane could not be built (above); the cluster tests need it" >&2
  exit 1
fi
build_pid=""
grep -h '^cluster: built' "$work/cluster-build.log" >&2 || true
scripts/cluster.sh start "$work/cluster"
export REGISTRY_OPERATOR_TEST_KUBECONFIG="$work/cluster/kubeconfig"
cargo test --workspace
