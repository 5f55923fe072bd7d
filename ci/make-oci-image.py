#!/usr/bin/env python3
"""Writes a one-layer OCI image layout from a root filesystem folder, offline (ci/demo.sh
and ci/bench/build.sh make their busybox base image with it, then `agent image import`).

usage: make-oci-image.py ROOTFS LAYOUT TAG
"""
import gzip, hashlib, io, json, os, sys, tarfile

rootfs, layout, tag = sys.argv[1:4]

def blob(data):
    d = hashlib.sha256(data).hexdigest()
    os.makedirs(f"{layout}/blobs/sha256", exist_ok=True)
    with open(f"{layout}/blobs/sha256/{d}", "wb") as f: f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}

def root_owned(info):
    info.uid = info.gid = 0; info.uname = info.gname = "root"; info.mtime = 0
    return info

buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
    t.add(rootfs, arcname=".", filter=root_owned)
raw = buf.getvalue()
os.makedirs(layout, exist_ok=True)
with open(f"{layout}/oci-layout", "w") as f: json.dump({"imageLayoutVersion": "1.0.0"}, f)
layer = blob(gzip.compress(raw, mtime=0)); layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
config = {"architecture": arch, "os": "linux",
          "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
          "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
          "history": [{"created_by": "make-oci-image.py " + os.path.basename(rootfs)}]}
cfg = blob(json.dumps(config).encode()); cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg, "layers": [layer]}
m = blob(json.dumps(manifest).encode()); m["mediaType"] = manifest["mediaType"]
m["annotations"] = {"org.opencontainers.image.ref.name": tag}
with open(f"{layout}/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [m]}, f)
