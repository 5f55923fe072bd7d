#!/usr/bin/env bash
# README quick start: on a fresh Debian 12 machine, as root, sets everything up and runs
# the example job ci/examples/hello.json end to end as an unprivileged user.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

PKGS=(libseccomp-dev libcap-dev libarchive-dev libxml2-dev pkg-config busybox-static uidmap util-linux)
if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

swift build -c release 2>&1 | tail -n 1
bin=$(swift build -c release --show-bin-path)/agent

# The agent runs as an ordinary user. As root, use (or create) the user `agentdemo` and a
# world-readable copy of the binary and the example.
if [ "$(id -u)" = 0 ]; then
  id agentdemo >/dev/null 2>&1 || useradd --create-home --shell /bin/sh agentdemo
  demo=/tmp/agent-demo
  rm -rf "$demo"; mkdir -p "$demo"
  install -m 0755 "$bin" "$demo/agent"
  install -m 0755 "$bin-init" "$demo/agent-init"
  cp -r "$repo/ci/examples" "$demo/examples"
  chown -R agentdemo: "$demo"
  run() { setpriv --reuid=agentdemo --regid=agentdemo --clear-groups env HOME=/home/agentdemo "$@"; }
else
  demo=$(mktemp -d)
  cp "$bin" "$demo/agent"; cp "$bin-init" "$demo/agent-init"; cp -r "$repo/ci/examples" "$demo/examples"
  run() { "$@"; }
fi

cd "$demo"
set +e
run "$demo/agent" run-job examples/hello.json --output "$demo/results" --progress plain
code=$?
set -e
echo
echo "exit code: $code; results in $demo/results:"
ls -R "$demo/results" | head -n 30
echo
cat "$demo/results/status.json"
exit $code
