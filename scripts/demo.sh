#!/usr/bin/env bash
# The main job in one command, on a fresh machine: start a real registry (CNCF distribution,
# Debian's docker-registry) on a free 127.0.0.1 port with temporary storage, seed it, show
# the retention plan of examples/demo-policy.yaml, apply it, show what is left, and stop the
# registry (by its PID) and remove its storage — also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
REPOS=${DEMO_REPOS:-20}
TAGS=${DEMO_TAGS:-12}

# The demo needs docker-registry, curl and python3, not the tests' venv, helm or kubectl.
SETUP_TEST_TOOLS=0 scripts/setup.sh
echo "==> building (release)"
cargo build --quiet --release --bin registry-operator
# Where cargo put it: CARGO_TARGET_DIR or the workspace's target directory.
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$TARGET_DIR/release/registry-operator

base=/tmp; [ -w /dev/shm ] && base=/dev/shm
DIR=$(mktemp -d "$base/registry-operator-demo.XXXXXX")
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill "$PID"; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
cat > "$DIR/config.yml" <<CONF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $DIR/data}
  delete: {enabled: true}
http: {addr: "127.0.0.1:$PORT", secret: demo-only}
CONF
echo "==> starting docker-registry on $URL (storage $DIR/data)"
docker-registry serve "$DIR/config.yml" >"$DIR/registry.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$URL/v2/" 2>/dev/null && break
  kill -0 "$PID" 2>/dev/null || { cat "$DIR/registry.log"; exit 1; }
  sleep 0.1
done

echo "==> seeding $REPOS repositories x $TAGS tags (one day apart; aliases, multi-arch indexes)"
"$BIN" dev seed --registry "$URL" --repos "$REPOS" --tags "$TAGS"

list() {
  # the registry's content, one line per repository
  python3 - "$URL" <<'PY'
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
echo "==> before"
list | tail -n 4

echo "==> registry-operator retention plan --registry $URL --policy examples/demo-policy.yaml"
"$BIN" retention plan --registry "$URL" --policy examples/demo-policy.yaml >"$DIR/plan.txt"
head -n 12 "$DIR/plan.txt"
echo "  ... ($(wc -l <"$DIR/plan.txt") lines)"
tail -n 3 "$DIR/plan.txt"

echo "==> registry-operator retention apply --registry $URL --policy examples/demo-policy.yaml"
"$BIN" retention apply --registry "$URL" --policy examples/demo-policy.yaml >"$DIR/apply.txt"
tail -n 4 "$DIR/apply.txt"

echo "==> after"
list
echo "==> stopping the registry (pid $PID) and removing $DIR"
