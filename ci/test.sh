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
      libxml2-utils uidmap ccache util-linux iproute2 python3 python3-jsonschema gcc
      docker-registry skopeo umoci libcurl4-openssl-dev apache2-utils)
# The outbound network (README "Network"): its stack, the alternative the probe knows of,
# PostgreSQL's binaries (for the services tests to come), iperf3 for ci/bench/network.sh.
PKGS+=(slirp4netns passt postgresql iperf3)
if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    # PostgreSQL for its binaries only: no main cluster is created (nor started) on install.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/agent-test.conf
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

swift build --build-tests 2>&1 | tail -n 3
# AGENT_TEST_BUILD=release runs the integration tests against the release agent (the binary
# README's commands and ci/demo.sh build: static runtime, lld, RELR) instead of the debug one.
bin_path=$(swift build --show-bin-path)
if [ "${AGENT_TEST_BUILD:-debug}" = release ]; then
  swift build -c release 2>&1 | tail -n 1
  bin_path=$(swift build -c release --show-bin-path)
fi

# The outbound network's stack (slirp4netns, run as the test user) opens /dev/net/tun; some
# machines ship it 0600, Debian's default is 0666 (README "Network"). The test that expects
# the clear error makes it 0600 for its own duration. The postgresql package is installed for
# its binaries only (the services tests run their own server): no cluster is started here.
if [ "$(id -u)" = 0 ] && [ -c /dev/net/tun ]; then chmod 0666 /dev/net/tun; fi

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
for b in agent agent-init; do install -m 0755 "$bin_path/$b" "$TEST_ROOT/bin/$b"; done
# The shared fixtures are required: a missing folder stops the run here, by name.
if [ ! -d "$repo/../shared/fixtures" ]; then
  echo "ci/test.sh: $repo/../shared/fixtures is missing (the tests need its fixtures)" >&2
  exit 1
fi
cp -r "$repo/../shared/fixtures/." "$TEST_ROOT/fixtures/"
cp -r "$repo/ci/examples" "$TEST_ROOT/fixtures/examples"
cp -r "$repo/policies" "$TEST_ROOT/fixtures/policies"
# Agent policies the integration tests pass to `agent exec --policy` (exec obeys the policy:
# --seccomp unconfined, another profile, --network host need a policy that allows them).
cp -r "$repo/ci/test-policies" "$TEST_ROOT/fixtures/test-policies"
ci/make-busybox-rootfs.sh "$TEST_ROOT/fixtures/busybox-rootfs"

# A registry for the image tests, bound to 127.0.0.1 only (never reachable from outside),
# with its storage in the test root. Idempotent: a registry left on the port by an earlier
# run is stopped first. Runs from different worktrees choose their own
# AGENT_TEST_REGISTRY_PORT so they do not stop each other's.
# The next port serves a registry that wants a Bearer token (auth "silly": any token will
# do) from a token server on the port after it, which gives one only for the login
# ci:secret: a pull there works only with the operator's credentials.
REGISTRY_PORT=${AGENT_TEST_REGISTRY_PORT:-5000}
AUTH_PORT=$((REGISTRY_PORT + 1)) TOKEN_PORT=$((REGISTRY_PORT + 2)) FLAKY_PORT=$((REGISTRY_PORT + 3))
BASIC_PORT=$((REGISTRY_PORT + 4)) FAULT_PORT=$((REGISTRY_PORT + 5)) CDN_PORT=$((REGISTRY_PORT + 6))
REGISTRY_DIR="$TEST_ROOT/registry"
for port in "$REGISTRY_PORT" "$AUTH_PORT" "$TOKEN_PORT" "$FLAKY_PORT" "$BASIC_PORT" "$FAULT_PORT" "$CDN_PORT"; do
  pidfile="/tmp/agent-test-registry-$port.pid"
  if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi
  for pid in $(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
    case "$(cat "/proc/$pid/cmdline" 2>/dev/null | tr '\0' ' ')" in
      *docker-registry*|*test-token-server.py*|*test-flaky-proxy.py*|*test-fault-proxy.py*) kill "$pid" 2>/dev/null || true ;;
    esac
  done
done
sleep 0.3
start_registry() {  # name port [auth yaml]
  mkdir -p "$REGISTRY_DIR/$1"
  cat > "$REGISTRY_DIR/$1/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/$1/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$2
${3:-}
YAML
  REGISTRY_HTTP_ADDR="127.0.0.1:$2" setsid docker-registry serve "$REGISTRY_DIR/$1/config.yml" \
    >"$REGISTRY_DIR/$1/log" 2>&1 < /dev/null &
  echo $! > "/tmp/agent-test-registry-$2.pid"
  for _ in $(seq 50); do
    curl -sS -o /dev/null "http://127.0.0.1:$2/v2/" 2>/dev/null && break
    sleep 0.1
  done
}
start_registry plain "$REGISTRY_PORT"
setsid python3 ci/test-token-server.py "$TOKEN_PORT" >/dev/null 2>&1 < /dev/null &
echo $! > "/tmp/agent-test-registry-$TOKEN_PORT.pid"
start_registry auth "$AUTH_PORT" "auth:
  silly:
    realm: http://127.0.0.1:$TOKEN_PORT/token
    service: agent-test"
# The port after those: a proxy to the plain registry that answers every path's first
# request with 503/429 and Retry-After (a pull through it needs the agent's retries).
setsid python3 ci/test-flaky-proxy.py "$FLAKY_PORT" "127.0.0.1:$REGISTRY_PORT" >/dev/null 2>&1 < /dev/null &
echo $! > "/tmp/agent-test-registry-$FLAKY_PORT.pid"
# The port after that: a registry with htpasswd Basic auth (login ci:secret, bcrypt as the
# registry requires), and in front of it a fault proxy (ci/test-fault-proxy.py) that
# redirects every blob to another host name and port, which cuts each blob's first
# download mid-way: a pull through it needs the agent's Range resume, and the redirect
# target must never see the agent's Authorization.
mkdir -p "$REGISTRY_DIR/basic"
htpasswd -Bbn ci secret > "$REGISTRY_DIR/basic/htpasswd"
start_registry basic "$BASIC_PORT" "auth:
  htpasswd:
    realm: agent-test-basic
    path: $REGISTRY_DIR/basic/htpasswd"
setsid python3 ci/test-fault-proxy.py "$FAULT_PORT" "$CDN_PORT" "127.0.0.1:$BASIC_PORT" ci:secret >/dev/null 2>&1 < /dev/null &
echo $! > "/tmp/agent-test-registry-$FAULT_PORT.pid"
export AGENT_TEST_REGISTRY="127.0.0.1:$REGISTRY_PORT" AGENT_TEST_AUTH_REGISTRY="127.0.0.1:$AUTH_PORT"
export AGENT_TEST_FLAKY_REGISTRY="127.0.0.1:$FLAKY_PORT" AGENT_TEST_BASIC_REGISTRY="127.0.0.1:$BASIC_PORT"
export AGENT_TEST_FAULT_REGISTRY="127.0.0.1:$FAULT_PORT" AGENT_TEST_FAULT_CDN="127.0.0.1:$CDN_PORT"
python3 ci/make-test-images.py "$AGENT_TEST_REGISTRY" "$TEST_ROOT/fixtures/busybox-rootfs" "$REGISTRY_DIR/layouts" \
  "$REGISTRY_DIR/plain/storage" > "$TEST_ROOT/fixtures/tampered-digest"
skopeo copy -q --src-tls-verify=false --dest-tls-verify=false --dest-creds ci:secret \
  "docker://$AGENT_TEST_REGISTRY/busybox:1" "docker://$AGENT_TEST_AUTH_REGISTRY/private/busybox:1"
skopeo copy -q --src-tls-verify=false --dest-tls-verify=false --dest-creds ci:secret \
  "docker://$AGENT_TEST_REGISTRY/layered:1" "docker://$AGENT_TEST_BASIC_REGISTRY/private/layered:1"
chmod -R a+rX "$TEST_ROOT"

export AGENT_BIN="$TEST_ROOT/bin/agent" AGENT_FIXTURES="$TEST_ROOT/fixtures" AGENT_TEST_USER="$TEST_USER"
swift test --skip-build "$@"
