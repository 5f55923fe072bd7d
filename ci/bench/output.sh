#!/usr/bin/env bash
# The output pipeline: 1 GiB of short lines (`yes`) and 1 GiB of 64 KiB lines printed by one
# step of `agent run-job` (step log capped at 16 MiB, the default), against `cat` writing
# the same bytes to a file. Prints wall time, throughput, the ratio to cat, and the agent's
# peak RSS (VmHWM, polled from /proc) next to its peak for a step that prints nothing.
#   ci/bench/output.sh          (BYTES=1073741824 by default; RUNS=3, the median is shown)
# As root it creates/reuses the user `agentci` and runs everything through setpriv.
set -euo pipefail
cd "$(dirname "$0")/../.."
BYTES=${BYTES:-1073741824}
RUNS=${RUNS:-3}

build=(swift build -c release)
"${build[@]}" 2>&1 | tail -n 1
work=$(mktemp -d /tmp/agent-bench-output.XXXXXX)
trap 'rm -rf "$work"' EXIT
install -m 0755 "$("${build[@]}" --show-bin-path)/agent" "$work/agent"
# A 64 KiB line is 65535 x's and a newline; `yes` repeats it.
long='yes "$(head -c 65535 /dev/zero | tr "\\0" x)"'
cat > "$work/short.json" <<JSON
{"version": 1, "id": "bench-short", "steps": [{"name": "yes", "run": "yes | head -c $BYTES"}]}
JSON
cat > "$work/long.json" <<JSON
{"version": 1, "id": "bench-long", "steps": [{"name": "long", "run": "$(printf '%s' "$long" | sed 's/"/\\"/g') | head -c $BYTES"}]}
JSON
cat > "$work/idle.json" <<'JSON'
{"version": 1, "id": "bench-idle", "steps": [{"name": "idle", "run": "sleep 0.5"}]}
JSON
chmod -R a+rwX "$work"

as_user=()
if [ "$(id -u)" = 0 ]; then
  user=${AGENT_BENCH_USER:-agentci}
  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
  as_user=(setpriv "--reuid=$(id -u "$user")" "--regid=$(id -g "$user")" --clear-groups --
           env "HOME=$(getent passwd "$user" | cut -d: -f6)")
  chown -R "$user" "$work"
fi

python3 - "$RUNS" "$BYTES" "$work" "$long" "${as_user[@]}" <<'PY'
import os, statistics, subprocess, sys, time
runs, nbytes, work, long = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
prefix = sys.argv[5:]

def hwm(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

def agent(job):
    argv = prefix + [f"{work}/agent", "run-job", f"{work}/{job}.json", "--output", f"{work}/results-{job}",
                     "--force", "--progress", "plain", "--state-dir", f"{work}/state"]
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while p.poll() is None:
        peak = max(peak, hwm(p.pid))
        time.sleep(0.01)
    if p.returncode != 0:
        sys.exit(f"run-job {job} failed with status {p.returncode}")
    return time.perf_counter() - t, peak

def cat(producer):
    # The same producer as the step, piped into cat writing a file (as the same user).
    out = f"{work}/cat.out"
    t = time.perf_counter()
    subprocess.run(prefix + ["sh", "-c", f"{producer} | head -c {nbytes} | cat > {out}"], check=True)
    dt = time.perf_counter() - t
    os.unlink(out)
    return dt

idle = max(agent("idle")[1] for _ in range(2))
print(f"bytes per run: {nbytes}; runs: {runs} (medians); agent idle peak RSS: {idle / 1024:.1f} MiB")
for name, producer in (("short lines (yes)", "yes"), ("64 KiB lines", long)):
    job = "short" if name.startswith("short") else "long"
    a, peaks, c = [], [], []
    for _ in range(runs):
        c.append(cat(producer))
        dt, peak = agent(job)
        a.append(dt); peaks.append(peak)
    ma, mc = statistics.median(a), statistics.median(c)
    print(f"{name:18s} agent {ma:6.2f} s ({nbytes / ma / 2**20:7.0f} MiB/s)  cat {mc:6.2f} s ({nbytes / mc / 2**20:7.0f} MiB/s)"
          f"  ratio {mc / ma:.2f}x cat  peak RSS {max(peaks) / 1024:.1f} MiB (+{(max(peaks) - idle) / 1024:.1f} over idle)")
PY
