#!/usr/bin/env bash
# The benchmarks (`make bench`), each printing a table:
#  1. retention: plan+apply on a seeded real registry next to a sequential naive client and a
#     skopeo loop, on loopback and through a proxy adding 5 ms per request;
#  2. the planner alone over 1,000,000 synthetic tags (time and peak memory);
#  3. the operator with 1,000 policies and 20,000 Pods (resident memory, convergence, latency);
#  4. scale: `retention plan` (peak RSS, wall time, requests per tag) over the synthetic
#     registry (crates/synthetic-registry) at 1k, 10k and 100k repositories x 10 tags,
#     10k x 100 (1,000,000 tags) and one repository of 500,000 tags; the zot flavor's requests
#     per tag; the real registry at 100 x 100 with the same data must decide identically.
#     BENCH_SCALE=0 skips it; SCALE_SETS, SCALE_HUGE, SCALE_ZOT, SCALE_REAL, SCALE_OUTPUTS,
#     SCALE_TIMEOUT narrow it (see examples/bench_scale.rs);
#  5. the operator at scale: `registry-operator run` on the local control plane under the chart's
#     RBAC, one Plan-mode policy over the synthetic registry at 10,000 x 100 (1,000,000 tags),
#     its peak resident memory against the chart's 256 MiB (scripts/bench-operator-scale.sh;
#     needs Go for the control plane). BENCH_OPERATOR_SCALE=0 skips it.
# The registry client's own benchmark: cargo run --release --example bench_client.
#   BENCH_SETS=100x20,100x100,1000x10 BENCH_RUNS=3 BENCH_SKOPEO=1 scripts/bench.sh
# Bounded: each tool run has its own time budget and the whole run stays under ~10 minutes
# with the default sets on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# The benchmarks need the registry (and skopeo for its loop), not the tests' venv, helm or kubectl.
if [ "${BENCH_SKOPEO:-1}" != 0 ]; then
  SETUP_TEST_TOOLS=0 SETUP_SKOPEO=1 scripts/setup.sh || SETUP_TEST_TOOLS=0 scripts/setup.sh
else
  SETUP_TEST_TOOLS=0 scripts/setup.sh
fi
if [ "${BENCH_SKOPEO:-1}" != 0 ] && ! command -v skopeo >/dev/null; then
  echo "bench: skopeo could not be installed; skipping the skopeo loop" >&2
  export BENCH_SKOPEO=0
fi
cargo build --quiet --release --bin registry-operator --example bench_retention --example bench_operator --example bench_scale
# Where cargo put them: CARGO_TARGET_DIR or the workspace's target directory.
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
export REGISTRY_OPERATOR_BIN=$TARGET_DIR/release/registry-operator
echo "== retention: engine vs sequential client vs skopeo loop (real registry, loopback and +5 ms)"
timeout 1200 "$TARGET_DIR/release/examples/bench_retention"
echo
echo "== planner alone: 1,000,000 tags in 10,000 repositories"
timeout 600 cargo bench --quiet --bench retention_planner
echo
echo "== operator: ${BENCH_POLICIES:-1000} RetentionPolicies and ${BENCH_PODS:-20000} Pods on a control plane of its own (scripts/cluster.sh)"
timeout 900 "$TARGET_DIR/release/examples/bench_operator" "${BENCH_POLICIES:-1000}" "${BENCH_PODS:-20000}"
if [ "${BENCH_SCALE:-1}" != 0 ]; then
  echo
  echo "== scale: retention plan over the synthetic registry (1k-100k repositories, 1,000,000 tags, one repository of 500,000 tags), zot's requests per tag, the real registry at 100 x 100"
  timeout 5400 "$TARGET_DIR/release/examples/bench_scale"
fi
if [ "${BENCH_OPERATOR_SCALE:-1}" != 0 ]; then
  echo
  echo "== the operator at scale: one Plan-mode policy over 1,000,000 synthetic tags, on the local control plane"
  timeout 2400 scripts/bench-operator-scale.sh
fi
