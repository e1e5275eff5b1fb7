#!/usr/bin/env bash
# The test command: set up a fresh machine (idempotent), then run every test of the workspace.
# Tests start their own real registries on 127.0.0.1 and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.tools/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
