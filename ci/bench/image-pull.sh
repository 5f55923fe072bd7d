#!/usr/bin/env bash
# Image pull and image step start (README "Container images"), as a non-root user:
#  1. cold pull + unpack of an image of about 100 MB in 5 layers (the busybox rootfs and
#     four layers of incompressible files) from a docker-registry on 127.0.0.1, by
#     `agent image pull` into an empty state folder, against `skopeo copy docker://...
#     oci:DIR` followed by `umoci unpack --rootless` of the same image (target <= 0.5x);
#  2. warm step start: `agent exec --image REF -- /bin/true` on the cached image against
#     `agent exec -- /bin/true` on `host`, medians of N interleaved runs (target <= 1.2x).
#   ci/bench/image-pull.sh     (N=100 step starts each, RUNS=3 cold pulls each; fewer: N=20 RUNS=1)
# As root it creates/reuses the user `agentci` and runs the clients through setpriv.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-100} RUNS=${RUNS:-3}

build=(swift build -c release)
"${build[@]}" 2>&1 | tail -n 1
work=$(mktemp -d /tmp/agent-bench-image.XXXXXX)
registry_pid=
cleanup() {
  # The registry this script started, by its id; then the work folder (umoci's and the
  # agent's files belong to the bench user but root may remove them).
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
for b in agent agent-init; do install -m 0755 "$("${build[@]}" --show-bin-path)/$b" "$work/$b"; done
chmod 755 "$work"

as_user=()
if [ "$(id -u)" = 0 ]; then
  user=${AGENT_BENCH_USER:-agentci}
  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
  as_user=(setpriv "--reuid=$(id -u "$user")" "--regid=$(id -g "$user")" --clear-groups --
           env "HOME=$work/home")
  mkdir -p "$work/home"; chown "$user" "$work/home"
fi

# A free loopback port: the kernel picks one, the registry binds it right after.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
cat > "$work/registry/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry/storage
http:
  addr: 127.0.0.1:$port
YAML
REGISTRY_HTTP_ADDR="127.0.0.1:$port" docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 </dev/null &
registry_pid=$!
for _ in $(seq 50); do curl -sS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && break; sleep 0.1; done
ref="127.0.0.1:$port/bench:1"

# The image: busybox (so /bin/true exists) under four layers of 25 MB each, 200 files of
# 125 KiB of random bytes (gzip cannot shrink them: the registry serves ~100 MB).
ci/make-busybox-rootfs.sh "$work/rootfs" >/dev/null
python3 - "$work/rootfs" "$work/layout" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
rootfs, layout = sys.argv[1:3]
os.makedirs(f"{layout}/blobs/sha256")
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{layout}/blobs/sha256/{d}", "wb").write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
def root(i):
    i.uid = i.gid = 0; i.uname = i.gname = "root"; return i
raws = []
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t: t.add(rootfs, arcname=".", filter=root)
raws.append(buf.getvalue())
for n in range(4):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo(f"data{n}"); d.type = tarfile.DIRTYPE; d.mode = 0o755; t.addfile(d)
        for k in range(200):
            data = os.urandom(125 * 1024)
            i = tarfile.TarInfo(f"data{n}/f{k:03d}"); i.size = len(data); i.mode = 0o644
            t.addfile(i, io.BytesIO(data))
    raws.append(buf.getvalue())
layers = []
for r in raws:
    d = blob(gzip.compress(r, compresslevel=1, mtime=0)); d["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
    layers.append(d)
arch = "amd64" if os.uname().machine == "x86_64" else "arm64"
cfg = {"architecture": arch, "os": "linux", "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
       "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(r).hexdigest() for r in raws]}}
c = blob(json.dumps(cfg).encode()); c["mediaType"] = "application/vnd.oci.image.config.v1+json"
m = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                     "config": c, "layers": layers}).encode())
m["mediaType"] = "application/vnd.oci.image.manifest.v1+json"; m["annotations"] = {"org.opencontainers.image.ref.name": "1"}
json.dump({"schemaVersion": 2, "manifests": [m]}, open(f"{layout}/index.json", "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(f"{layout}/oci-layout", "w"))
print(f"image: {len(layers)} layers, {sum(l['size'] for l in layers) / 1e6:.1f} MB compressed, "
      f"{sum(len(r) for r in raws) / 1e6:.1f} MB uncompressed")
PY
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:1" "docker://$ref"
chmod -R a+rX "$work"
mkdir -p "$work/runs"; [ ${#as_user[@]} -eq 0 ] || chown "$user" "$work/runs"

# Cold pulls, interleaved so both clients see the same machine load; every run starts
# from nothing (a fresh state folder; a fresh OCI folder and bundle for skopeo + umoci).
ms() { echo $(( $(date +%s%N) / 1000000 )); }
agent_t=() tools_t=()
for r in $(seq "$RUNS"); do
  t0=$(ms); "${as_user[@]}" "$work/agent" image pull --state-dir "$work/runs/state$r" "$ref" >/dev/null; t1=$(ms)
  agent_t+=($((t1 - t0)))
  t0=$(ms)
  "${as_user[@]}" skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$work/runs/oci$r:1"
  "${as_user[@]}" umoci unpack --rootless --image "$work/runs/oci$r:1" "$work/runs/bundle$r" >/dev/null
  t1=$(ms); tools_t+=($((t1 - t0)))
  # Only the last state folder is kept (for the warm step starts): disk stays bounded.
  [ "$r" = "$RUNS" ] || rm -rf "$work/runs/state$r"
  rm -rf "$work/runs/oci$r" "$work/runs/bundle$r"
done
python3 - "${agent_t[*]}" "${tools_t[*]}" <<'PY'
import statistics, sys
a, t = [list(map(int, s.split())) for s in sys.argv[1:3]]
ma, mt = statistics.median(a), statistics.median(t)
print(f"cold pull+unpack  agent {ma / 1000:6.2f} s   skopeo+umoci {mt / 1000:6.2f} s   ratio {ma / mt:.2f}x (target <= 0.5x; runs {a} vs {t} ms)")
PY

# Warm step starts on the cached image against `host`, interleaved (posix_spawn + waitpid).
state="$work/runs/state$RUNS"
policy="$PWD/ci/test-policies/images.json"
image_cmd="$work/agent exec --state-dir $state --policy $policy --image $ref --pull never -- /bin/true"
host_cmd="$work/agent exec --policy $policy -- /bin/true"
"${as_user[@]}" $image_cmd && "${as_user[@]}" $host_cmd
python3 - "$N" "${#as_user[@]}" "${as_user[@]}" "image|$image_cmd" "host|$host_cmd" <<'PY'
import os, shlex, statistics, sys, time
n, k = int(sys.argv[1]), int(sys.argv[2])
prefix, specs = sys.argv[3:3 + k], sys.argv[3 + k:]
cmds = [(s.split("|", 1)[0], prefix + shlex.split(s.split("|", 1)[1])) for s in specs]
times = {name: [] for name, _ in cmds}
devnull = os.open(os.devnull, os.O_RDWR)
fa = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)]
for i in range(n + 3):
    for name, argv in cmds:
        t = time.perf_counter_ns()
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=fa)
        _, st = os.waitpid(pid, 0)
        if st != 0:
            sys.exit(f"{name} failed with status {st}")
        if i >= 3:  # warm-up
            times[name].append((time.perf_counter_ns() - t) / 1e6)
mi, mh = statistics.median(times["image"]), statistics.median(times["host"])
print(f"warm step start   image {mi:6.2f} ms   host {mh:6.2f} ms   ratio {mi / mh:.2f}x (target <= 1.2x; median of {n})")
PY
