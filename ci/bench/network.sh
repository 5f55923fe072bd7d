#!/usr/bin/env bash
# The outbound network's cost, in one run, as root (it makes the test internet):
#  1. Throughput: iperf3 (a few seconds each, interleaved rounds) from an `agent exec
#     --network outbound` container to a server in a network namespace standing for the
#     internet, against slirp4netns run by hand with its best options (MTU 65520, the same
#     --disable-host-loopback) on a plain `unshare -rn` namespace. Target: ratio >= 0.9.
#  2. Start-up: `agent exec --network outbound -- /bin/true` against `--network none`,
#     interleaved, medians. Target: at most 15 ms more.
#   ci/bench/network.sh                 (ROUNDS=3 iperf3 rounds of SECONDS=3 s; N=30 starts each)
#   AGENT_BIN_DIR=/path/to/bin ...      uses that folder's agent + agent-init instead of building
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3} SECS=${SECONDS_EACH:-3} N=${N:-30}
[ "$(id -u)" = 0 ] || { echo "network.sh: run as root (it makes a network namespace)" >&2; exit 1; }
for t in slirp4netns iperf3 ip unshare nsenter python3; do
  command -v "$t" >/dev/null || { echo "network.sh: $t is missing (apt-get install slirp4netns iperf3 iproute2)" >&2; exit 1; }
done
[ -c /dev/net/tun ] && chmod 0666 /dev/net/tun

if [ -z "${AGENT_BIN_DIR:-}" ]; then
  swift build -c release 2>&1 | tail -n 1
  AGENT_BIN_DIR=$(swift build -c release --show-bin-path)
fi
user=${AGENT_BENCH_USER:-agentci}
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
as_user=(setpriv "--reuid=$(id -u "$user")" "--regid=$(id -g "$user")" --clear-groups --
         env "HOME=$(getent passwd "$user" | cut -d: -f6)" PATH=/usr/sbin:/usr/bin:/sbin:/bin)
work=$(mktemp -d /tmp/agent-netbench.XXXXXX)
ns=agent-netbench-$$ host=anb$$h peer=anb$$n
server=10.232.0.2
cleanup() {
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  ip link del "$host" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for b in agent agent-init; do install -m 0755 "$AGENT_BIN_DIR/$b" "$work/$b"; done
echo '{"allowOutboundNetwork": true}' > "$work/policy.json"
chmod -R a+rX "$work"

# The test internet: a namespace with no way out, reached from the host over a veth pair.
ip netns add "$ns"
ip link add "$host" type veth peer name "$peer"
ip link set "$peer" netns "$ns"
ip addr add 10.232.0.1/24 dev "$host"; ip link set "$host" up
ip -n "$ns" addr add "$server/24" dev "$peer"; ip -n "$ns" link set "$peer" up; ip -n "$ns" link set lo up
ip netns exec "$ns" iperf3 -s -D -B "$server" --pidfile "$work/iperf3.pid"
for _ in $(seq 50); do python3 -c "import socket; socket.create_connection(('$server', 5201), 0.2)" 2>/dev/null && break; sleep 0.1; done

agent_exec=("${as_user[@]}" "$work/agent" exec --policy "$work/policy.json")
gbits() { python3 -c 'import json,sys; d = json.load(sys.stdin); d.get("error") and sys.exit("iperf3: " + d["error"]); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9))'; }

# slirp4netns by hand, as podman/rootlesskit run it: the same options the agent passes.
cat > "$work/by-hand.sh" <<EOF
set -e
unshare -rn sleep 120 &
P=\$!
sleep 0.1
exec 4</dev/zero
slirp4netns --configure --mtu=65520 --disable-host-loopback --userns-path=/proc/\$P/ns/user \
  --netns-type=path /proc/\$P/ns/net tap0 >/dev/null 2>&1 &
S=\$!
for _ in \$(seq 200); do nsenter -t \$P -U -n --preserve-credentials ip route 2>/dev/null | grep -q default && break; sleep 0.01; done
nsenter -t \$P -U -n --preserve-credentials iperf3 -c $server -t $SECS -J
kill \$S \$P
EOF
chmod a+r "$work/by-hand.sh"

agent_sum=0 hand_sum=0
echo "iperf3, $ROUNDS rounds of $SECS s, to $server in the test namespace:"
for r in $(seq "$ROUNDS"); do
  a=$("${agent_exec[@]}" --network outbound --tmpfs /tmp --timeout 60s -- iperf3 -c "$server" -t "$SECS" -J | gbits)
  h=$("${as_user[@]}" bash "$work/by-hand.sh" | gbits)
  echo "  round $r: agent outbound $a Gbit/s, slirp4netns by hand $h Gbit/s"
  agent_sum=$(python3 -c "print($agent_sum + $a)") hand_sum=$(python3 -c "print($hand_sum + $h)")
done
python3 - "$agent_sum" "$hand_sum" "$ROUNDS" <<'EOF'
import sys
a, h, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"throughput: agent outbound {a/n:.2f} Gbit/s, slirp4netns by hand {h/n:.2f} Gbit/s, ratio {a/h:.2f} (target >= 0.9)")
EOF

# Start-up: clone to exit of /bin/true, outbound against none, interleaved.
: > "$work/none.ms"; : > "$work/outbound.ms"
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000 )); }
for _ in $(seq 3); do "${agent_exec[@]}" --network outbound -- /bin/true; done  # warm caches
for _ in $(seq "$N"); do
  ms "${agent_exec[@]}" --network none -- /bin/true >> "$work/none.ms"
  ms "${agent_exec[@]}" --network outbound -- /bin/true >> "$work/outbound.ms"
done
python3 - "$work/none.ms" "$work/outbound.ms" <<'EOF'
import statistics, sys
none = [int(x) / 1000 for x in open(sys.argv[1])]
out = [int(x) / 1000 for x in open(sys.argv[2])]
mn, mo = statistics.median(none), statistics.median(out)
print(f"start-up (agent exec -- /bin/true, median of {len(none)}): none {mn:.1f} ms, outbound {mo:.1f} ms, "
      f"+{mo - mn:.1f} ms (target <= 15 ms), ratio {mo / mn:.2f}")
EOF
