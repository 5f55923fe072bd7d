#!/usr/bin/env bash
# Benchmark: a cache mount that matters. A generated C project (30 files) is compiled with
# `ccache gcc` inside `agent run-job`, with CCACHE_DIR on a cache mount:
#   1. cold (empty cache) then warm (same cache): target warm <= 0.2x cold;
#   2. warm through the cache mount against warm through a plain bind of a copy of the same
#      directory, alternated, median of N: the cache mount should cost nothing measurable.
# Prints both ratios. Run as root (the agent then runs as $AGENT_TEST_USER through setpriv)
# or as an ordinary user. Needs ccache and gcc (Debian: apt-get install ccache gcc).
#
#   ci/bench/cache-ccache.sh [N]        AGENT=path/to/agent to pick the binary
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
N=${1:-3}
FILES=${FILES:-30}

AGENT=${AGENT:-$(swift build --show-bin-path)/agent}
[ -x "$AGENT" ] || { echo "no agent binary at $AGENT (swift build first)" >&2; exit 2; }
command -v ccache >/dev/null && command -v gcc >/dev/null || { echo "needs ccache and gcc" >&2; exit 2; }

WORK=$(mktemp -d /tmp/agent-bench-ccache.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
run_as=()
if [ "$(id -u)" = 0 ]; then
  user=${AGENT_TEST_USER:-agentci}
  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
  run_as=(setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --clear-groups --)
  install -m 0755 "$AGENT" "$WORK/agent"
  install -m 0755 "$AGENT-init" "$WORK/agent-init"  # the container's PID 1, beside the agent
  AGENT="$WORK/agent"
fi

# --- the project: FILES translation units with enough code that compiling them takes time
mkdir -p "$WORK/src"
for i in $(seq 1 "$FILES"); do
  {
    echo '#include <stdio.h>'
    echo '#include <stdlib.h>'
    echo '#include <string.h>'
    echo '#include <math.h>'
    for j in $(seq 1 40); do
      cat <<C
static double f${i}_${j}(const double *v, int n) {
    double acc = 0;
    for (int k = 0; k < n; k++) {
        double x = v[k] * ${j}.0 + sin(v[(k + ${i}) % n]);
        if (x > ${j}) acc += sqrt(x) / (1.0 + k); else acc -= x * x * 0.5;
        for (int m = 0; m < (k % 7); m++) acc += cos(acc + m) * 1e-3;
    }
    return acc;
}
C
    done
    echo "double unit${i}(const double *v, int n) { double s = 0;"
    for j in $(seq 1 40); do echo "  s += f${i}_${j}(v, n);"; done
    echo "  return s; }"
  } > "$WORK/src/unit$i.c"
done
{
  echo '#include <stdio.h>'
  for i in $(seq 1 "$FILES"); do echo "double unit$i(const double *v, int n);"; done
  echo 'int main(void) { double v[64]; for (int i = 0; i < 64; i++) v[i] = i * 0.5; double s = 0;'
  for i in $(seq 1 "$FILES"); do echo "  s += unit$i(v, 64);"; done
  echo '  printf("%f\n", s); return 0; }'
} > "$WORK/src/main.c"

BUILD='mkdir -p out && ls *.c | xargs -P2 -I{} sh -c '"'"'ccache gcc -O2 -c "$1" -o "out/${1%.c}.o"'"'"' _ {} && gcc out/*.o -o out/app -lm && ./out/app >/dev/null && ccache -s | grep -Ei "hits|misses" | tr -s " " | head -n 3'

job() { # job NAME MOUNT
  cat > "$WORK/$1.json" <<JSON
{
  "version": 1,
  "id": "$1",
  "workspace": "src",
  "timeout": "30m",
  "steps": [
    {"name": "build", "run": $(printf '%s' "$BUILD" | sed 's/\\/\\\\/g; s/"/\\"/g; s/^/"/; s/$/"/'),
     "workdir": "/workspace",
     "mounts": ["$2"],
     "env": {"CCACHE_DIR": "/ccache", "CCACHE_MAXSIZE": "2G", "HOME": "/tmp"}}
  ]
}
JSON
}

# The bind variant needs a policy that allows its source (a copy of the warm cache: binds of
# the agent's own state folder are refused by design).
if [ -f "$repo/policies/policy.json" ]; then
  sed "s#\"allowedBindSources\": \[\]#\"allowedBindSources\": [\"$WORK/ccache-bind\"]#" "$repo/policies/policy.json" > "$WORK/policy.json"
else
  echo "{\"allowedBindSources\": [\"$WORK/ccache-bind\"]}" > "$WORK/policy.json"
fi
job cache "type=cache,target=/ccache,id=ccache"
job bind "type=bind,source=$WORK/ccache-bind,target=/ccache,rw"
chmod -R a+rwX "$WORK"
[ "${#run_as[@]}" -gt 0 ] && chown -R "$(id -u "$user"):$(id -g "$user")" "$WORK"

mkdir -p "$WORK/home"; chmod 777 "$WORK/home"
export XDG_STATE_HOME="$WORK/state" AGENT_POLICY="$WORK/policy.json"
run=0
timed() { # timed JOB -> seconds on stdout
  run=$((run + 1))
  local t0 t1
  t0=$(date +%s.%N)
  if ! "${run_as[@]}" env XDG_STATE_HOME="$XDG_STATE_HOME" AGENT_POLICY="$AGENT_POLICY" HOME="$WORK/home" \
       "$AGENT" run-job --progress plain --force --output "$WORK/results/$1" "$WORK/$1.json" > "$WORK/run-$1.log" 2>&1; then
    echo "run $run ($1) failed:" >&2; tail -n 30 "$WORK/run-$1.log" >&2; exit 1
  fi
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

cold=$(timed cache)
warm=$(timed cache)
printf 'ccache cold: %.2fs  warm: %.2fs  warm/cold = %.3f (target <= 0.2)\n' "$cold" "$warm" "$(echo "$warm / $cold" | bc -l)"

# Same warm contents for the bind: a copy of the cache's data directory.
data=$(find "$WORK/state/agent/caches" -maxdepth 3 -type d -name data | head -n 1)
cp -a "$data" "$WORK/ccache-bind"
[ "${#run_as[@]}" -gt 0 ] && chown -R "$(id -u "$user"):$(id -g "$user")" "$WORK/ccache-bind"
cache_times=() bind_times=()
for _ in $(seq 1 "$N"); do
  cache_times+=("$(timed cache)")
  bind_times+=("$(timed bind)")
done
mc=$(printf '%s\n' "${cache_times[@]}" | median)
mb=$(printf '%s\n' "${bind_times[@]}" | median)
printf 'warm via cache mount: median %.3fs  via plain bind: median %.3fs  cache/bind = %.3f (N=%d)\n' \
  "$mc" "$mb" "$(echo "$mc / $mb" | bc -l)" "$N"
