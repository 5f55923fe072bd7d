#!/usr/bin/env bash
# What `services:` cost, in one run, as root (it runs the agent as an unprivileged user),
# peers side by side, interleaved rounds, medians:
#  1. A job's pod: a job of STEPS trivial steps with one idle service (the pod, the service's
#     container, its stop) against the same job without services (each step its own
#     network namespace). Prints the ratio of run-job wall times.
#  2. One stack per job: STEPS trivial steps in a job-level `"network": "outbound"` job (one
#     pod, one slirp4netns for the job) against the same steps each asking `outbound` for
#     itself with the job's network `none` (one slirp4netns per step).
#  3. PostgreSQL time to ready: a job with a real PostgreSQL service (Debian's binaries on
#     the host root, initdb + postgres, health check tcp 5432) and one `psql select 1` step:
#     the service's waited_seconds from status.json, and the job's wall time against the
#     same job with the server started by the step itself (no service).
#   ci/bench/services.sh                    (ROUNDS=5, STEPS=10)
#   AGENT_BIN_DIR=/path/to/bin ...          uses that folder's agent + agent-init instead of building
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5} STEPS=${STEPS:-10}
[ "$(id -u)" = 0 ] || { echo "services.sh: run as root (it runs the agent as an unprivileged user)" >&2; exit 1; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pgbin/postgres" ] || { echo "services.sh: PostgreSQL is missing (apt-get install postgresql)" >&2; exit 1; }
command -v slirp4netns >/dev/null || { echo "services.sh: slirp4netns is missing (apt-get install slirp4netns)" >&2; exit 1; }
[ -c /dev/net/tun ] && chmod 0666 /dev/net/tun
if [ -z "${AGENT_BIN_DIR:-}" ]; then
  swift build -c release 2>&1 | tail -n 1
  AGENT_BIN_DIR=$(swift build -c release --show-bin-path)
fi
user=${AGENT_BENCH_USER:-agentci}
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
uid=$(id -u "$user") gid=$(id -g "$user")
work=$(mktemp -d /tmp/agent-svcbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
for b in agent agent-init; do install -m 0755 "$AGENT_BIN_DIR/$b" "$work/$b"; done
echo '{"allowOutboundNetwork": true}' > "$work/policy.json"
as_user=(setpriv "--reuid=$uid" "--regid=$gid" --clear-groups --
         env "HOME=$(getent passwd "$user" | cut -d: -f6)" PATH=/usr/sbin:/usr/bin:/sbin:/bin)

steps() {  # steps json: STEPS trivial steps, with an optional extra key
  local out="" i
  for i in $(seq "$STEPS"); do out+="${out:+,}{\"name\": \"s$i\", \"run\": [\"/bin/true\"]$1}"; done
  echo "$out"
}
idle='{"name": "host", "alias": "idle", "command": ["sh", "-c", "while :; do sleep 1; done"]}'
pg_cmd="initdb -D /tmp/pg -U postgres --auth=trust >/dev/null && exec postgres -D /tmp/pg -k /tmp -c listen_addresses=127.0.0.1 -p 5432"
cat > "$work/none.json"     <<EOF
{"version": 1, "id": "bench-none", "steps": [$(steps "")]}
EOF
cat > "$work/pod.json"      <<EOF
{"version": 1, "id": "bench-pod", "services": [$idle], "steps": [$(steps "")]}
EOF
cat > "$work/per-step.json" <<EOF
{"version": 1, "id": "bench-per-step", "steps": [$(steps ', "network": "outbound"')]}
EOF
cat > "$work/job-out.json"  <<EOF
{"version": 1, "id": "bench-job-out", "network": "outbound", "steps": [$(steps "")]}
EOF
cat > "$work/pg.json"       <<EOF
{"version": 1, "id": "bench-pg", "services": [{"name": "host", "alias": "db", "user": "$uid:$gid",
  "variables": {"PATH": "$pgbin:/usr/bin:/bin"}, "command": ["sh", "-c", "$pg_cmd"], "healthcheck": {"tcp": 5432, "interval": "50ms"}}],
 "steps": [{"name": "q", "run": "psql -h db -U postgres -tAc 'select 1'", "env": {"PATH": "$pgbin:/usr/bin:/bin"}}]}
EOF
# The peer of pg.json: the step starts the same server itself and polls for it the same way.
cat > "$work/pg-step.json"  <<EOF
{"version": 1, "id": "bench-pg-step", "steps": [{"name": "q", "user": "$uid:$gid", "env": {"PATH": "$pgbin:/usr/bin:/bin"},
  "run": "($pg_cmd) >/dev/null 2>&1 & until pg_isready -q -h 127.0.0.1 -U postgres; do sleep 0.05; done; psql -h 127.0.0.1 -U postgres -tAc 'select 1'; kill -INT \$!; wait"}]}
EOF
chmod -R a+rX "$work"; chown "$uid:$gid" "$work"

run() {  # job -> wall milliseconds (fails loudly if the job does)
  local t0 t1 out="$work/out-$1-$RANDOM"
  t0=$(date +%s%N)
  timeout 300 "${as_user[@]}" "$work/agent" run-job "$work/$1.json" --output "$out" --state-dir "$work/state" \
    --policy "$work/policy.json" --progress plain >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  t1=$(date +%s%N)
  if [ "$1" = pg ]; then
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["services"][0]["waited_seconds"])' "$out/status.json" >> "$work/pg-ready"
  fi
  rm -rf "$out"
  echo $(( (t1 - t0) / 1000000 ))
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A times
jobs=(none pod per-step job-out pg pg-step)
for job in "${jobs[@]}"; do run "$job" >/dev/null; done  # warm-up (and a check that each job passes)
: > "$work/pg-ready"
for _ in $(seq "$ROUNDS"); do
  for job in "${jobs[@]}"; do times[$job]+="$(run "$job") "; done
done
m() { echo "${times[$1]}" | tr ' ' '\n' | grep . | median; }
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
echo "rounds $ROUNDS, $STEPS steps per job, median run-job wall time (ms):"
printf '  1. %s steps, no services: %s; with one idle service (pod): %s; ratio %s\n' "$STEPS" "$(m none)" "$(m pod)" "$(ratio "$(m pod)" "$(m none)")"
printf '  2. %s outbound steps, a stack per step: %s; one pod for the job: %s; ratio %s\n' "$STEPS" "$(m per-step)" "$(m job-out)" "$(ratio "$(m job-out)" "$(m per-step)")"
printf '  3. PostgreSQL as a service: %s (ready after a median %ss); started by the step itself: %s; ratio %s\n' \
  "$(m pg)" "$(median < "$work/pg-ready")" "$(m pg-step)" "$(ratio "$(m pg)" "$(m pg-step)")"
