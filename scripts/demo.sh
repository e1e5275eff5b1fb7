#!/usr/bin/env bash
# The main job, for now: render what a managed Registry sample becomes (zot config + objects).
# It becomes the retention demo against a local real registry once the engine lands.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --quiet --release
target/release/registry-operator crd | head -20
