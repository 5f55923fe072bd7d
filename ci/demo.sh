#!/usr/bin/env bash
# README quick start: on a fresh Debian 12 machine, as root, sets everything up and, as an
# unprivileged user: makes a busybox base image offline (busybox-static, imported into the
# agent's image store), builds ci/examples/image/Dockerfile with `agent build` (a secret
# mount and a cache mount), then runs the job ci/examples/image-job.json on the built image
# (a build step with a cache, a test step writing a JUnit report, artifacts) and prints
# where the results are.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

PKGS=(libseccomp-dev libcap-dev libarchive-dev libxml2-dev libcurl4-openssl-dev pkg-config busybox-static uidmap util-linux python3 tar)
if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# AGENT_BIN_DIR=DIR uses a prebuilt agent (and its agent-init) instead of a release build.
if [ -n "${AGENT_BIN_DIR:-}" ]; then
  bin="$AGENT_BIN_DIR/agent"
else
  swift build -c release 2>&1 | tail -n 1
  bin=$(swift build -c release --show-bin-path)/agent
fi

# The agent runs as an ordinary user. As root, use (or create) the user `agentdemo` and a
# world-readable copy of the binary and the example.
if [ "$(id -u)" = 0 ]; then
  id agentdemo >/dev/null 2>&1 || useradd --create-home --shell /bin/sh agentdemo
  demo=/tmp/agent-demo
  rm -rf "$demo"; mkdir -p "$demo"
  install -m 0755 "$bin" "$demo/agent"
  install -m 0755 "$bin-init" "$demo/agent-init"
  cp -r "$repo/ci/examples" "$demo/examples"
  cp "$repo/ci/make-oci-image.py" "$repo/ci/make-busybox-rootfs.sh" "$repo/ci/demo-policy.json" "$demo/"
  chown -R agentdemo: "$demo"
  run() { setpriv --reuid=agentdemo --regid=agentdemo --clear-groups env HOME=/home/agentdemo "$@"; }
else
  demo=$(mktemp -d)
  cp "$bin" "$demo/agent"; cp "$bin-init" "$demo/agent-init"; cp -r "$repo/ci/examples" "$demo/examples"
  cp "$repo/ci/make-oci-image.py" "$repo/ci/make-busybox-rootfs.sh" "$repo/ci/demo-policy.json" "$demo/"
  run() { "$@"; }
fi

cd "$demo"
state="$demo/state"
policy="$demo/demo-policy.json"
echo "== 1. a base image, offline: busybox-static as a one-layer OCI image, imported as localhost/busybox:demo"
run ./make-busybox-rootfs.sh "$demo/busybox-rootfs"
run python3 ./make-oci-image.py "$demo/busybox-rootfs" "$demo/busybox-oci" demo
run "$demo/agent" image import --state-dir "$state" "oci:$demo/busybox-oci:demo" --tag localhost/busybox:demo

echo
echo "== 2. agent build: ci/examples/image/Dockerfile (secret mount, cache mount, multi-stage, heredoc)"
set +e
run env DEMO_TOKEN=demo-token-5f2e9a "$demo/agent" build --state-dir "$state" --policy "$policy" --progress plain \
  --secret id=demo_token,env=DEMO_TOKEN -t localhost/demo-app:1 --output "type=oci,dest=$demo/demo-app.oci.tar" examples/image
code=$?
set -e
[ $code = 0 ] || { echo "agent build failed (exit $code)"; exit $code; }
echo "   again, unchanged (everything CACHED):"
run env DEMO_TOKEN=demo-token-5f2e9a "$demo/agent" build --state-dir "$state" --policy "$policy" --progress plain \
  --secret id=demo_token,env=DEMO_TOKEN -t localhost/demo-app:1 examples/image 2>&1 | grep -E 'CACHED|built' || true

echo
echo "== 3. a job on the built image: a build step with a cache, a test step with a JUnit report, artifacts"
set +e
run "$demo/agent" run-job examples/image-job.json --state-dir "$state" --policy "$policy" --output "$demo/results" --progress plain
code=$?
set -e
echo
echo "exit code: $code"
echo "image:    localhost/demo-app:1 in the agent's store ($state), and as an OCI archive: $demo/demo-app.oci.tar"
echo "results:  $demo/results (status.json, logs/, junit.xml, artifacts/)"
ls -R "$demo/results" | head -n 30
echo
cat "$demo/results/status.json"
exit $code
