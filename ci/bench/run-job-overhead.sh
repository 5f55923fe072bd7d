#!/usr/bin/env bash
# What `agent run-job` adds on top of one container: a one-step `/bin/true` job (parse,
# workspace layer, logs, status.json, junit.xml, atomic results folder) against
# `agent exec -- /bin/true`, interleaved in one loop, same binary, same user.
#   ci/bench/run-job-overhead.sh          (N=100 runs each)
# As root it creates/reuses the user `agentci` and runs everything through setpriv.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-100}

build=(swift build -c release)
"${build[@]}" 2>&1 | tail -n 1
work=$(mktemp -d /tmp/agent-bench-runjob.XXXXXX)
trap 'rm -rf "$work"' EXIT
for b in agent agent-init; do install -m 0755 "$("${build[@]}" --show-bin-path)/$b" "$work/$b"; done
cat > "$work/true.json" <<'JSON'
{"version": 1, "id": "bench-true", "steps": [{"name": "true", "run": ["/bin/true"]}]}
JSON
chmod -R a+rwX "$work"
chmod 0755 "$work/agent" "$work/agent-init"  # agent-init must not be writable by group or others

as_user=()
if [ "$(id -u)" = 0 ]; then
  user=${AGENT_BENCH_USER:-agentci}
  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
  # The user's own HOME: the compiled seccomp filter is cached under ~/.cache/agent.
  as_user=(setpriv "--reuid=$(id -u "$user")" "--regid=$(id -g "$user")" --clear-groups --
           env "HOME=$(getent passwd "$user" | cut -d: -f6)")
  chown -R "$user" "$work"
fi

exec_cmd="$work/agent exec -- /bin/true"
job_cmd="$work/agent run-job $work/true.json --output $work/results --force --progress plain --state-dir $work/state"
for c in "$exec_cmd" "$job_cmd"; do "${as_user[@]}" $c 2>/dev/null || { echo "failed: $c" >&2; exit 1; }; done

python3 - "$N" "${#as_user[@]}" "${as_user[@]}" "exec|$exec_cmd" "run-job|$job_cmd" <<'PY'
import os, shlex, statistics, sys, time
n, k = int(sys.argv[1]), int(sys.argv[2])
prefix, specs = sys.argv[3:3 + k], sys.argv[3 + k:]
cmds = [(s.split("|", 1)[0], prefix + shlex.split(s.split("|", 1)[1])) for s in specs]
times = {name: [] for name, _ in cmds}
devnull = os.open(os.devnull, os.O_RDWR)
fa = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
for i in range(n + 5):
    for name, argv in cmds:
        t = time.perf_counter_ns()
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=fa)
        _, st = os.waitpid(pid, 0)
        if st != 0:
            sys.exit(f"{name} failed with status {st}")
        if i >= 5:
            times[name].append((time.perf_counter_ns() - t) / 1e6)
for name, ts in times.items():
    s = sorted(ts)
    print(f"{name:8s} median {statistics.median(ts):7.2f} ms   p10 {s[len(s)//10]:7.2f}   p90 {s[len(s)*9//10]:7.2f}   (n={len(ts)})")
e, j = statistics.median(times["exec"]), statistics.median(times["run-job"])
print(f"run-job adds {j - e:.2f} ms median over exec (ratio {j / e:.2f}x; target: adds <= 15 ms)")
PY
