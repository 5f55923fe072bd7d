#!/usr/bin/env bash
# The test command (README "Run the tests"). On a fresh Debian 12 machine, as root:
# installs what the build and the tests need, builds, creates an unprivileged user,
# gives it a world-readable copy of the binaries (agent, agent-init) and fixtures, and runs `swift test`.
# The integration tests run the agent as that user (never as root).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

PKGS=(libseccomp-dev libcap-dev libarchive-dev libxml2-dev pkg-config bubblewrap busybox-static
      golang-github-containers-common
      libxml2-utils uidmap ccache util-linux iproute2 python3 python3-jsonschema)
if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

swift build --build-tests 2>&1 | tail -n 3

# The unprivileged user the integration tests run the agent as. useradd gives it a
# /etc/subuid and /etc/subgid range, so both id-mapping modes are exercised.
TEST_USER=${AGENT_TEST_USER:-agentci}
if [ "$(id -u)" = 0 ] && ! id "$TEST_USER" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/sh "$TEST_USER"
fi

# A world-readable copy of the binary and fixtures: CI's clone may sit in a folder
# the test user cannot enter.
TEST_ROOT=${AGENT_TEST_ROOT:-/opt/agent-test}
rm -rf "$TEST_ROOT"
mkdir -p "$TEST_ROOT/bin" "$TEST_ROOT/fixtures"
# agent-init (the container's PID 1) must sit beside the agent.
for b in agent agent-init; do install -m 0755 "$(swift build --show-bin-path)/$b" "$TEST_ROOT/bin/$b"; done
cp -r "$repo/../shared/fixtures/." "$TEST_ROOT/fixtures/" 2>/dev/null || true
cp -r "$repo/ci/examples" "$TEST_ROOT/fixtures/examples"
cp -r "$repo/policies" "$TEST_ROOT/fixtures/policies"
# Agent policies the integration tests pass to `agent exec --policy` (exec obeys the policy:
# --seccomp unconfined, another profile, --network host need a policy that allows them).
cp -r "$repo/ci/test-policies" "$TEST_ROOT/fixtures/test-policies"
ci/make-busybox-rootfs.sh "$TEST_ROOT/fixtures/busybox-rootfs"
chmod -R a+rX "$TEST_ROOT"

export AGENT_BIN="$TEST_ROOT/bin/agent" AGENT_FIXTURES="$TEST_ROOT/fixtures" AGENT_TEST_USER="$TEST_USER"
swift test --skip-build "$@"
