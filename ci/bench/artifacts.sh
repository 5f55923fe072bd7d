#!/usr/bin/env bash
# Artifact collection benchmark (not a test): collecting 1 GiB in 10,000 files with
# `agent debug collect-artifacts` (copy + SHA-256 manifest + SHA256SUMS) against
# `cp -a` followed by `sha256sum` of the copied tree, in one run, interleaved, 3 rounds
# each, median. Both copy strategies of the collector are measured; the ratio uses the
# default (read-write). Target: ratio <= 1.0.
#
# Usage: ci/bench/artifacts.sh [AGENT_BINARY]   (BENCH_DIR=... to choose the scratch folder)
# Caches cannot be dropped unprivileged, so every round reads a source tree that is
# (probably) in the page cache; both sides get the same treatment.
set -euo pipefail
cd "$(dirname "$0")/../.."
agent=${1:-$(swift build -c release --show-bin-path 2>/dev/null)/agent}
if [ ! -x "$agent" ]; then
  swift build -c release --product agent 2>&1 | tail -n 1
  agent=$(swift build -c release --show-bin-path)/agent
fi
rounds=${ROUNDS:-3}
dir=$(mktemp -d "${BENCH_DIR:-/tmp}/agent-bench-artifacts.XXXXXX")
trap 'rm -rf "$dir"' EXIT

# 1 GiB in 10,000 files: 100 folders of 100 files (~105 KiB each), random content.
src=$dir/ws/dist
mkdir -p "$src"
for d in $(seq -w 0 99); do
  mkdir -p "$src/d$d"
  head -c $((1024 * 1024 * 1024 / 100)) /dev/urandom > "$dir/chunk"
  split -n 100 -a 3 "$dir/chunk" "$src/d$d/f"
done
rm -f "$dir/chunk"
echo "source: $(find "$src" -type f | wc -l) files, $(du -sb "$src" | cut -f1) bytes"

now() { date +%s.%N; }
time_agent() {  # strategy
  rm -rf "$dir/out"
  local t0; t0=$(now)
  "$agent" debug collect-artifacts --workspace "$dir/ws" --path 'dist/**' -o "$dir/out" --name dist \
    --budget $((2 * 1024 * 1024 * 1024)) --strategy "$1" >/dev/null
  awk -v a="$(now)" -v b="$t0" 'BEGIN {printf "%.3f", a - b}'
}
time_cp() {
  rm -rf "$dir/cp"
  local t0; t0=$(now)
  cp -a "$dir/ws" "$dir/cp"
  (cd "$dir/cp" && find . -type f -print0 | sort -z | xargs -0 sha256sum > "$dir/cp.sums")
  awk -v a="$(now)" -v b="$t0" 'BEGIN {printf "%.3f", a - b}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

rw=(); cfr=(); cpt=()
for i in $(seq "$rounds"); do
  rw+=("$(time_agent read-write)")
  cfr+=("$(time_agent copy-file-range)")
  cpt+=("$(time_cp)")
  echo "round $i: agent read-write ${rw[-1]}s, agent copy-file-range ${cfr[-1]}s, cp -a + sha256sum ${cpt[-1]}s"
done
# The manifest must agree with sha256sum.
(cd "$dir/out" && sha256sum -c --quiet SHA256SUMS)

m_rw=$(median "${rw[@]}"); m_cfr=$(median "${cfr[@]}"); m_cp=$(median "${cpt[@]}")
echo "median: agent read-write ${m_rw}s, agent copy-file-range ${m_cfr}s, cp -a + sha256sum ${m_cp}s"
awk -v a="$m_rw" -v b="$m_cp" 'BEGIN {printf "ratio agent(read-write) / (cp -a + sha256sum): %.2fx\n", a / b}'
awk -v a="$m_cfr" -v b="$m_cp" 'BEGIN {printf "ratio agent(copy-file-range) / (cp -a + sha256sum): %.2fx\n", a / b}'
