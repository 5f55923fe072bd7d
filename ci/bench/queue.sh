#!/usr/bin/env bash
# Queue benchmark (not a test): pickup latency and throughput of `agent watch`.
#
#   ci/bench/queue.sh [JOBS]          (default 500 jobs; run as root or as a normal user)
#
# 1. Pickup latency: one job at a time into an idle agent; latency = the step's start time
#    in the job's status.json minus the moment the job was renamed into incoming/
#    (recorded here). Prints p50/p99 against the targets (p50 <= 5 ms, p99 <= 50 ms).
# 2. Throughput: JOBS one-step /bin/true jobs dropped at once, `--concurrency 1` and
#    `--concurrency 2` side by side; prints jobs/s, the ratio of the two, and the ratio to
#    the target (>= 100 jobs/s at concurrency 2).
# For scale: GitLab Runner polls every 3 s; Buildkite's agent picks up in 2-10 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
JOBS=${1:-500}
SAMPLES=${LATENCY_SAMPLES:-100}
command -v python3 >/dev/null || { echo "queue.sh needs python3" >&2; exit 2; }

if [ -z "${AGENT_BIN:-}" ]; then
  # The same release build (static Swift runtime, see Package.swift) as the other benchmarks.
  build=(swift build -c release)
  "${build[@]}" 2>&1 | tail -n 1
  AGENT_BIN="$("${build[@]}" --show-bin-path)/agent"
fi
work=$(mktemp -d /tmp/agent-bench-queue.XXXXXX)
trap 'rm -rf "$work"' EXIT
install -m 0755 "$AGENT_BIN" "$work/agent"
install -m 0755 "$AGENT_BIN-init" "$work/agent-init"  # the container's PID 1, beside the agent
chmod 0755 "$work"
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
  user=${AGENT_TEST_USER:-agentci}
  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
  RUN_AS=(setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --clear-groups --
          env "HOME=$(getent passwd "$user" | cut -d: -f6)")
fi
"${RUN_AS[@]}" "$work/agent" watch --check "$work/probe" >/dev/null \
  || { echo "agent watch has no job runner in this build (exit 3): nothing to measure" >&2; exit 3; }

export WORK="$work" JOBS SAMPLES
export AGENT_CMD="${RUN_AS[*]} $work/agent"
python3 - <<'PY'
import json, os, shlex, signal, subprocess, time
from datetime import datetime

work, jobs, samples = os.environ["WORK"], int(os.environ["JOBS"]), int(os.environ["SAMPLES"])
agent = shlex.split(os.environ["AGENT_CMD"])
JOB = json.dumps({"version": 1, "steps": [{"name": "true", "run": ["/bin/true"]}]})

def start(root, concurrency):
    os.makedirs(root + "/incoming", exist_ok=True)
    os.chmod(root, 0o777); os.chmod(root + "/incoming", 0o777)
    p = subprocess.Popen(agent + ["watch", root, "--concurrency", str(concurrency), "--log-format", "json"],
                         stderr=open(root + ".log", "w"))
    running.append(p)
    for _ in range(500):
        if os.path.isdir(root + "/done"): break
        time.sleep(0.01)
    return p

running = []

def stop(p):
    p.send_signal(signal.SIGTERM); p.wait(timeout=600)

import atexit
# A failed measurement must not leave an agent behind (it would hold the caller's pipes).
atexit.register(lambda: [q.kill() for q in running if q.poll() is None])

def enqueue(root, name):
    tmp = f"{root}/incoming/.{name}.json"
    with open(tmp, "w") as f: f.write(JOB)
    os.chmod(tmp, 0o644)
    t = time.time()  # just before the rename: the latency includes the rename itself
    os.rename(tmp, f"{root}/incoming/{name}.json")
    return t

def parse_time(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

def step_start(result):
    st = json.load(open(result + "/status.json"))
    candidates = []
    for step in st.get("steps", [])[:1]:
        candidates += [step.get(k) for k in ("started_at", "started", "startedAt", "startTime", "start")]
    candidates += [st.get(k) for k in ("started_at", "started", "startedAt", "startTime", "start")]
    for c in candidates:
        if isinstance(c, str): return parse_time(c)
        if isinstance(c, (int, float)): return float(c) / (1000 if c > 1e11 else 1)
    raise SystemExit(f"{result}/status.json: no step start time found")

def wait_results(root, n, timeout=900):
    deadline = time.time() + timeout
    while time.time() < deadline:
        names = [x for x in os.listdir(root + "/done") + os.listdir(root + "/failed") if not x.startswith(".")]
        if len(names) >= n: return
        time.sleep(0.002)
    raise SystemExit(f"{root}: only {len(names)} of {n} results after {timeout}s")

def pct(values, q):
    v = sorted(values); return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]

# 1. Pickup latency, one job at a time.
root = work + "/latency"
p = start(root, 1)
lat = []
for i in range(samples):
    renamed = enqueue(root, f"l{i:04d}")
    wait_results(root, i + 1)
    lat.append((step_start(f"{root}/done/l{i:04d}") - renamed) * 1000)
stop(p)
failed = [x for x in os.listdir(root + "/failed") if not x.startswith(".")]
p50, p99 = pct(lat, 0.50), pct(lat, 0.99)

# 2. Throughput, concurrency 1 and 2 side by side.
rates = {}
for c in (1, 2):
    root = f"{work}/throughput-c{c}"
    p = start(root, c)
    t0 = time.time()
    for i in range(jobs): enqueue(root, f"t{i:04d}")
    wait_results(root, jobs)
    rates[c] = jobs / (time.time() - t0)
    failed += [x for x in os.listdir(root + "/failed") if not x.startswith(".")]
    stop(p)

print(f"pickup latency ({samples} jobs, idle agent): p50 {p50:.2f} ms  p99 {p99:.2f} ms")
print(f"  ratio to target: p50 {p50 / 5:.2f}x of 5 ms, p99 {p99 / 50:.2f}x of 50 ms (<= 1 meets it)")
print(f"throughput ({jobs} /bin/true jobs): concurrency 1 {rates[1]:.1f} jobs/s, concurrency 2 {rates[2]:.1f} jobs/s")
print(f"  ratio concurrency 2 / 1: {rates[2] / rates[1]:.2f}x; to target: {rates[2] / 100:.2f}x of 100 jobs/s (>= 1 meets it)")
if failed: print(f"warning: {len(failed)} jobs failed, e.g. {failed[:3]}")
PY
