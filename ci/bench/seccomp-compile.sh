#!/usr/bin/env bash
# Seccomp compile cost: a cold libseccomp compile against a cache hit (in memory, and on
# disk as a new `agent` process would see it), for Docker's profile and the project's own,
# side by side in one run. Prints medians and the cold/hit ratios. Not a test: numbers only.
#
#   ci/bench/seccomp-compile.sh [ITERATIONS]
#
# Uses $AGENT_BIN if set, else builds (debug; CONFIG=release for release) and uses that.
set -euo pipefail
cd "$(dirname "$0")/../.."
iterations=${1:-15}

if [ -z "${AGENT_BIN:-}" ]; then
  config=${CONFIG:-debug}
  swift build -c "$config" --product agent 2>&1 | tail -n 1 >&2
  AGENT_BIN="$(swift build -c "$config" --show-bin-path)/agent"
fi

docker_profile=""
for candidate in "${AGENT_FIXTURES:-/nonexistent}/seccomp/docker-default.json" ../shared/fixtures/seccomp/docker-default.json; do
  if [ -f "$candidate" ]; then docker_profile=$candidate; break; fi
done
[ -n "$docker_profile" ] || { echo "Docker's profile not found (set AGENT_FIXTURES)" >&2; exit 1; }

cache_dir=$(mktemp -d)
trap 'rm -rf "$cache_dir"' EXIT

field() { sed -E "s/.*\"$1\":\"?([^,\"}]*).*/\1/" <<<"$2"; }

printf '%-16s %6s %12s %14s %12s %12s %12s\n' profile instrs "cold ms" "mem hit us" "disk hit us" "cold/mem" "cold/disk"
for name in docker default; do
  if [ "$name" = docker ]; then source=$docker_profile; label=docker-default; else source=default; label=agent-default; fi
  out=$("$AGENT_BIN" debug seccomp "$source" --iterations "$iterations" --cache-dir "$cache_dir" --json)
  cold=$(field coldMs "$out"); mem=$(field cachedUs "$out"); disk=$(field diskUs "$out")
  printf '%-16s %6s %12s %14s %12s %11.0fx %11.0fx\n' "$label" "$(field instructions "$out")" "$cold" "$mem" "$disk" \
    "$(awk -v c="$cold" -v h="$mem" 'BEGIN { print c * 1000 / h }')" \
    "$(awk -v c="$cold" -v h="$disk" 'BEGIN { print c * 1000 / h }')"
done
echo "(medians of $iterations; cold = parse + libseccomp compile + export; mem hit = same process; disk hit = new cache reading <sha256>.bpf)"
