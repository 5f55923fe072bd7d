#!/usr/bin/env bash
# What applying image file owners costs (README "Owners"), as a non-root user with
# subordinate ranges: a cold `agent exec --image oci:LAYOUT -- /bin/true` into an empty
# state folder (import, unpack, start) of an image whose top layer has 20,000 files and 200
# folders owned by 1000:1000, with `--id-map subordinate` (owners applied in a user
# namespace) against `--id-map single` (owners only recorded in user.rootlesscontainers),
# and against `umoci unpack --rootless` of the same layout (which records them as single
# mode does). Medians of RUNS interleaved runs, and the ratios.
#   ci/bench/image-owners.sh           (RUNS=5; FILES=20000)
# As root it creates/reuses the user `agentci` (useradd gives it subordinate ranges) and
# runs the clients through setpriv.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5} FILES=${FILES:-20000}

build=(swift build -c release)
"${build[@]}" 2>&1 | tail -n 1
work=$(mktemp -d /tmp/agent-bench-owners.XXXXXX)
as_user=()
cleanup() {
  # Subordinate-owned snapshots are removed by the agent itself (image prune) before root
  # removes the rest.
  for s in "$work"/runs/s*; do [ -d "$s" ] && "${as_user[@]}" "$work/agent" image prune --state-dir "$s" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
for b in agent agent-init; do install -m 0755 "$("${build[@]}" --show-bin-path)/$b" "$work/$b"; done
chmod 755 "$work"
if [ "$(id -u)" = 0 ]; then
  user=${AGENT_BENCH_USER:-agentci}
  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
  as_user=(setpriv "--reuid=$(id -u "$user")" "--regid=$(id -g "$user")" --clear-groups --
           env "HOME=$work/home")
  mkdir -p "$work/home"; chown "$user" "$work/home"
fi

ci/make-busybox-rootfs.sh "$work/rootfs" >/dev/null
python3 - "$work/rootfs" "$work/layout" "$FILES" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
rootfs, layout, files = sys.argv[1], sys.argv[2], int(sys.argv[3])
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
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
    for d in range(200):
        i = tarfile.TarInfo(f"home/d{d:03d}"); i.type = tarfile.DIRTYPE; i.mode = 0o755; i.uid = i.gid = 1000; t.addfile(i)
        for k in range(files // 200):
            data = b"x" * 100
            i = tarfile.TarInfo(f"home/d{d:03d}/f{k:04d}"); i.size = len(data); i.mode = 0o644; i.uid = i.gid = 1000
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
print(f"image: busybox + a layer of {files} files in 200 folders, all owned by 1000:1000")
PY
chmod -R a+rX "$work"
mkdir -p "$work/runs"; [ ${#as_user[@]} -eq 0 ] || chown "$user" "$work/runs"
policy="$PWD/ci/test-policies/images.json"

ms() { echo $(( $(date +%s%N) / 1000000 )); }
sub_t=() single_t=() umoci_t=()
for r in $(seq "$RUNS"); do
  for mode in subordinate single; do
    t0=$(ms)
    "${as_user[@]}" "$work/agent" exec --state-dir "$work/runs/s$mode$r" --policy "$policy" --id-map "$mode" \
      --image "oci:$work/layout:1" -- /bin/true
    t1=$(ms)
    if [ "$mode" = subordinate ]; then sub_t+=($((t1 - t0))); else single_t+=($((t1 - t0))); fi
  done
  # The subordinate run really applied the owners: 1000 inside is subuid start + 999 outside.
  if [ "$r" = 1 ]; then
    "${as_user[@]}" "$work/agent" exec --state-dir "$work/runs/ssubordinate1" --policy "$policy" --id-map subordinate \
      --image "oci:$work/layout:1" -- /bin/stat -c 'inside: %u:%g' /home/d000/f0000
  fi
  t0=$(ms)
  "${as_user[@]}" umoci unpack --rootless --image "$work/layout:1" "$work/runs/bundle$r" >/dev/null
  t1=$(ms); umoci_t+=($((t1 - t0)))
  rm -rf "$work/runs/bundle$r"
  "${as_user[@]}" "$work/agent" image prune --state-dir "$work/runs/ssubordinate$r" >/dev/null || true
  rm -rf "$work/runs/ssingle$r" "$work/runs/ssubordinate$r"
done
python3 - "${sub_t[*]}" "${single_t[*]}" "${umoci_t[*]}" <<'PY'
import statistics, sys
s, g, u = [list(map(int, a.split())) for a in sys.argv[1:4]]
ms, mg, mu = statistics.median(s), statistics.median(g), statistics.median(u)
print(f"cold exec --image  subordinate {ms / 1000:6.2f} s   single {mg / 1000:6.2f} s   ratio {ms / mg:.2f}x "
      f"(owners applied vs recorded; runs {s} vs {g} ms)")
print(f"                   subordinate vs umoci unpack --rootless {mu / 1000:6.2f} s: ratio {ms / mu:.2f}x (runs {u} ms)")
PY
