#!/usr/bin/env bash
# The retention benchmark (`make bench` equivalent): plan+apply on a seeded real registry next
# to a sequential naive client and a skopeo loop, on loopback and through a proxy adding 5 ms
# per request; prints a Markdown table with wall times and request counts.
#   BENCH_SETS=100x20,100x100,1000x10 BENCH_RUNS=3 BENCH_SKOPEO=1 scripts/bench.sh
# Bounded: each tool run has its own time budget and the whole run stays under ~10 minutes
# with the default sets on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker-registry >/dev/null || scripts/setup.sh
if [ "${BENCH_SKOPEO:-1}" != 0 ] && ! command -v skopeo >/dev/null; then
  echo "bench: skopeo not installed; skipping the skopeo loop (apt-get install skopeo)" >&2
  export BENCH_SKOPEO=0
fi
cargo build --quiet --release --bin registry-operator --example bench_retention
exec timeout 1200 target/release/examples/bench_retention
