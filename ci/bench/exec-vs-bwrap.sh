#!/usr/bin/env bash
# Container start-up cost: `agent exec` against bubblewrap (and rootless runc when it is
# installed) on one busybox rootfs, as a non-root user, runs interleaved in one loop so
# both see the same machine load. Prints medians and the agent/bwrap ratio.
#   ci/bench/exec-vs-bwrap.sh            (N=200 runs each; N=50 ci/bench/... for fewer)
#   AGENT_BIN_DIR=/path/to/bin ...      times that folder's agent + agent-init instead of building
#   AGENT_BASELINE=/path/to/old/bin ...  also times that folder's agent (and its agent-init, if
#                                        any) in the same loop: "baseline" vs "agent", before/after
# As root it creates/reuses the user `agentci` and runs everything through setpriv.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-200}

# The release build links the Swift runtime statically (Package.swift), which halves the
# agent's process start-up; the plain release build (what ci/demo.sh makes) is the one measured.
build=(swift build -c release)
if [ -z "${AGENT_BIN_DIR:-}" ]; then
  "${build[@]}" 2>&1 | tail -n 1
  AGENT_BIN_DIR=$("${build[@]}" --show-bin-path)
fi
work=$(mktemp -d /tmp/agent-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
for b in agent agent-init; do install -m 0755 "$AGENT_BIN_DIR/$b" "$work/$b"; done
if [ -n "${AGENT_BASELINE:-}" ]; then
  mkdir -p "$work/baseline"
  for b in agent agent-init; do
    [ -e "$AGENT_BASELINE/$b" ] && install -m 0755 "$AGENT_BASELINE/$b" "$work/baseline/$b"
  done
fi
ci/make-busybox-rootfs.sh "$work/rootfs" >/dev/null
# What the dynamic loader maps at every start (the release build: libc and libm only).
if command -v readelf >/dev/null; then
  echo "agent needs: $(readelf -d "$work/agent" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
fi
chmod 755 "$work"

as_user=()
if [ "$(id -u)" = 0 ]; then
  user=${AGENT_BENCH_USER:-agentci}
  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
  # The user's own HOME: the compiled seccomp filter is cached under ~/.cache/agent.
  as_user=(setpriv "--reuid=$(id -u "$user")" "--regid=$(id -g "$user")" --clear-groups --
           env "HOME=$(getent passwd "$user" | cut -d: -f6)")
fi

agent=("$work/agent" exec --rootfs "$work/rootfs" -- /bin/true)
note="seccomp (project default profile) and capability dropping on"
# Until the policy work lands, compiling the default profile is not implemented.
if ! "${as_user[@]}" "${agent[@]}" 2>"$work/err"; then
  if grep -q "not implemented" "$work/err"; then
    agent=("$work/agent" exec --rootfs "$work/rootfs" --seccomp unconfined -- /bin/true)
    note="seccomp OFF (profile compilation not available yet), capability dropping on"
  else
    cat "$work/err" >&2; exit 1
  fi
fi
bwrap=(bwrap --unshare-all --die-with-parent --ro-bind "$work/rootfs" / --proc /proc --dev /dev --tmpfs /tmp /bin/true)

# `auto` maps ids through newuidmap/newgidmap (two setuid helpers) when the user has
# subordinate ranges; `single` writes one mapping line itself, as bwrap does.
single=("${agent[@]:0:2}" --id-map single "${agent[@]:2}")
# `agent --version` is the floor: the Swift process start-up without any container.
# `/bin/true` alone is the harness floor: setpriv+env (as root) and process creation, which
# every other line pays too; the net ratio subtracts it.
cmds=("agent|${agent[*]}" "bwrap|${bwrap[*]}" "agent-single|${single[*]}" "agent-noop|$work/agent --version"
      "floor|/bin/true")
if [ -n "${AGENT_BASELINE:-}" ]; then
  baseline=("$work/baseline/agent" "${agent[@]:1}")
  cmds+=("baseline|${baseline[*]}")
fi
for c in "${cmds[@]}"; do
  "${as_user[@]}" ${c#*|} || { echo "failed: ${c#*|}" >&2; exit 1; }
done
if command -v runc >/dev/null; then
  mkdir -p "$work/bundle" && (cd "$work/bundle" && runc spec --rootless)
  python3 - "$work/bundle/config.json" "$work/rootfs" <<'PY'
import json, sys
p, root = sys.argv[1], sys.argv[2]
c = json.load(open(p)); c["root"]["path"] = root; c["process"]["args"] = ["/bin/true"]; c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
PY
  chmod -R a+rX "$work/bundle"
  cmds+=("runc|runc --root $work/runc-state run --bundle $work/bundle bench")
fi

# Interleaved timing loop: posix_spawn + waitpid, so the measuring overhead is tiny and equal.
# The order is shuffled in every round (seeded, so runs are repeatable): a start leaves work
# behind it (the kernel tears a network namespace down in a worker after the process is
# gone), which the next command pays for. In a fixed order one command always followed
# bwrap and another always followed the cheap floor, which biased both ratios.
python3 - "$N" "${#as_user[@]}" "${as_user[@]}" "${cmds[@]}" <<'PY'
import os, random, shlex, statistics, sys, time
n, k = int(sys.argv[1]), int(sys.argv[2])
prefix, specs = sys.argv[3:3 + k], sys.argv[3 + k:]
cmds = [(s.split("|", 1)[0], prefix + shlex.split(s.split("|", 1)[1])) for s in specs]
times = {name: [] for name, _ in cmds}
devnull = os.open(os.devnull, os.O_RDWR)
fa = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)]
rng = random.Random(12)
for i in range(n + 5):
    for name, argv in rng.sample(cmds, len(cmds)):
        t = time.perf_counter_ns()
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=fa)
        _, st = os.waitpid(pid, 0)
        dt = time.perf_counter_ns() - t
        if st != 0:
            sys.exit(f"{name} failed with status {st}")
        if i >= 5:  # warm-up
            times[name].append(dt / 1e6)
for name, ts in times.items():
    print(f"{name:12s} median {statistics.median(ts):7.2f} ms   p10 {sorted(ts)[len(ts)//10]:7.2f}   p90 {sorted(ts)[len(ts)*9//10]:7.2f}   (n={len(ts)})")
base = statistics.median(times["bwrap"])
print(f"agent/bwrap ratio: {statistics.median(times['agent']) / base:.2f}x (id-map auto)")
print(f"agent-single/bwrap ratio: {statistics.median(times['agent-single']) / base:.2f}x (id-map single)")
floor = statistics.median(times["floor"])
if "baseline" in times:
    print(f"agent/baseline ratio: {statistics.median(times['agent']) / statistics.median(times['baseline']):.2f}x (after/before)")
for name in [n for n in ("agent", "agent-single", "agent-noop", "baseline") if n in times]:
    net = (statistics.median(times[name]) - floor) / (base - floor)
    print(f"{name}/bwrap net of the {floor:.2f} ms floor: {net:.2f}x")
PY
# The container alone (clone to exit, measured inside the agent) without the Swift process
# start-up (dynamic loading, argument parsing), which dominates the end-to-end number.
for i in $(seq 50); do "${as_user[@]}" "${agent[@]:0:2}" --verbose "${agent[@]:2}" 2>&1 | sed -n 's/.*container ran \([0-9.]*\) ms.*/\1/p'; done \
  | sort -n | awk '{a[NR]=$1} END {printf "agent clone-to-exit (in-process) median %.2f ms (n=%d)\n", a[int((NR+1)/2)], NR}'
echo "($note)"
