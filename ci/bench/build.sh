#!/usr/bin/env bash
# `agent build` benchmark (README "agent build"), in one run: a three-stage Dockerfile (a
# C build of $FILES generated files with a ccache cache mount, a COPY --from, a small
# final stage) built cold, rebuilt unchanged, rebuilt after one source file changed, and
# the same cold build with buildah (`buildah bud --isolation chroot`, Debian's, as root).
# Prints the times and the ratios. As root the agent runs as $AGENT_BENCH_USER (agentci).
# AGENT_BIN_DIR=DIR times a prebuilt agent instead of a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
FILES=${FILES:-300}
work=${WORK:-/tmp/agent-bench-build}
if [ -n "${AGENT_BIN_DIR:-}" ]; then bin=$AGENT_BIN_DIR; else
  swift build -c release 2>&1 | tail -n 1; bin=$(swift build -c release --show-bin-path); fi
rm -rf "$work"; mkdir -p "$work/bin"
install -m 0755 "$bin/agent" "$bin/agent-init" "$work/bin/"

# Base images, offline: a toolchain (the host's gcc, binutils, libc headers, ccache) and busybox.
ci/bench/make-toolchain-rootfs.sh "$work/toolchain-rootfs" >/dev/null
ci/make-busybox-rootfs.sh "$work/busybox-rootfs"
python3 ci/make-oci-image.py "$work/toolchain-rootfs" "$work/layouts/toolchain" bench
python3 ci/make-oci-image.py "$work/busybox-rootfs" "$work/layouts/busybox" bench

# The project: $FILES C files of a few functions each, and main.c calling one of each.
ctx="$work/ctx"; mkdir -p "$ctx/src"
for i in $(seq 1 "$FILES"); do
  cat > "$ctx/src/f$i.c" <<C
static int helper_$i(int x) { int s = 0; for (int k = 0; k < x; k++) s += (k * $i) ^ (s >> 3); return s; }
int table_$i[64];
int f$i(int x) { for (int k = 0; k < 64; k++) table_$i[k] = helper_$i(x + k); return table_$i[x & 63]; }
C
done
{ for i in $(seq 1 "$FILES"); do echo "int f$i(int);"; done
  echo "int main(void) { int s = 0;"; for i in $(seq 1 "$FILES"); do echo "s += f$i($i);"; done; echo "return s & 1; }"; } > "$ctx/src/main.c"
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
ARG TOOLCHAIN=localhost/toolchain:bench
ARG BASE=localhost/busybox:bench
FROM ${TOOLCHAIN} AS build
WORKDIR /src
COPY src/ ./
RUN --mount=type=cache,target=/ccache,id=bench-ccache \
    ls *.c | CCACHE_DIR=/ccache xargs -P 2 -n 16 sh -c 'for f; do ccache gcc -O2 -c "$f" -o "${f%.c}.o" || exit 1; done' _ \
    && gcc -o app *.o && rm -f *.o

FROM ${BASE} AS pack
COPY --from=build /src/app /pkg/app
RUN sha256sum /pkg/app > /pkg/SHA256SUMS

FROM ${BASE}
COPY --from=pack /pkg /opt/app
CMD ["/opt/app/app"]
DOCKERFILE
printf '{"images": {"allowedRegistries": ["localhost"]}}\n' > "$work/policy.json"

user=${AGENT_BENCH_USER:-agentci}
if [ "$(id -u)" = 0 ]; then
  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
  chown -R "$user:" "$work"; chmod 755 "$work"
  as_user() { setpriv --reuid="$user" --regid="$user" --clear-groups env HOME="$(getent passwd "$user" | cut -d: -f6)" "$@"; }
else
  as_user() { "$@"; }
fi
state="$work/state"
as_user "$work/bin/agent" image import --state-dir "$state" "oci:$work/layouts/toolchain:bench" --tag localhost/toolchain:bench >/dev/null
as_user "$work/bin/agent" image import --state-dir "$state" "oci:$work/layouts/busybox:bench" --tag localhost/busybox:bench >/dev/null

now() { date +%s.%N; }
agent_build() {
  local t0 t1; t0=$(now)
  as_user "$work/bin/agent" build --state-dir "$state" --policy "$work/policy.json" --progress plain -t localhost/bench:1 "$ctx" \
    > "$work/$1.log" 2>&1 || { cat "$work/$1.log"; exit 1; }
  t1=$(now); echo "$t1 - $t0" | bc
}
cold=$(agent_build cold)
unchanged=$(agent_build unchanged)
echo "/* changed */ int changed_1 = 1;" >> "$ctx/src/f1.c"
onefile=$(agent_build onefile)
grep -q CACHED "$work/unchanged.log" && ! grep -q 'ccache gcc' <(grep -v '] RUN' "$work/unchanged.log")

# buildah: the same Dockerfile and context, cold (fresh storage), as root with chroot isolation.
buildah_s=""
if command -v buildah >/dev/null && [ "$(id -u)" = 0 ]; then
  git checkout -q -- . 2>/dev/null || true
  sed -i 's|^/\* changed \*/.*||' "$ctx/src/f1.c"
  broot="$work/buildah-root" brun="$work/buildah-run"
  B=(buildah --root "$broot" --runroot "$brun" --storage-driver vfs)
  "${B[@]}" pull -q "oci:$work/layouts/toolchain:bench" >/dev/null
  "${B[@]}" tag "$("${B[@]}" images -q | head -n 1)" localhost/toolchain:bench
  "${B[@]}" pull -q "oci:$work/layouts/busybox:bench" >/dev/null
  "${B[@]}" tag "$("${B[@]}" images -q --filter reference='*' | head -n 1)" localhost/busybox:bench 2>/dev/null || true
  t0=$(now)
  if "${B[@]}" bud --isolation chroot --layers --pull=never -t localhost/bench:buildah "$ctx" > "$work/buildah.log" 2>&1; then
    t1=$(now); buildah_s=$(echo "$t1 - $t0" | bc)
  else
    echo "buildah failed (see $work/buildah.log):"; tail -n 5 "$work/buildah.log"
  fi
fi

ratio() { echo "scale=3; $1 / $2" | bc; }
echo
echo "agent build, $FILES C files, ccache cache mount, 3 stages ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
printf 'cold build            %8.2f s\n' "$cold"
printf 'unchanged rebuild     %8.2f s   ratio %s (target <= 0.05)\n' "$unchanged" "$(ratio "$unchanged" "$cold")"
printf 'one file changed      %8.2f s   ratio %s (target <= 0.2)\n' "$onefile" "$(ratio "$onefile" "$cold")"
if [ -n "$buildah_s" ]; then
  printf 'buildah bud cold      %8.2f s   agent/buildah %s (target <= 1.0)\n' "$buildah_s" "$(ratio "$cold" "$buildah_s")"
fi
