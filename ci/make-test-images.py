#!/usr/bin/env python3
"""Builds the images the integration tests pull (README "Container images") as OCI
layouts and pushes them with skopeo to the test registry on 127.0.0.1. No internet: the
base is the busybox-static rootfs made by make-busybox-rootfs.sh.

usage: make-test-images.py REGISTRY ROOTFS WORKDIR REGISTRY_STORAGE
"""
import gzip, hashlib, io, json, os, struct, subprocess, sys, tarfile

registry, rootfs, work, storage = sys.argv[1:5]

def tar_bytes(build):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        build(t)
    return buf.getvalue()

def add_file(t, name, data=b"", mode=0o644):
    i = tarfile.TarInfo(name); i.size = len(data); i.mode = mode
    t.addfile(i, io.BytesIO(data))

def add(t, name, kind, target="", mode=0o755):
    i = tarfile.TarInfo(name); i.mode = mode
    i.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
    i.linkname = target
    t.addfile(i)

def root_owned(info):
    info.uid = info.gid = 0; info.uname = info.gname = "root"
    return info

def busybox(t):
    t.add(rootfs, arcname=".", filter=root_owned)

def write_blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    os.makedirs(f"{layout}/blobs/sha256", exist_ok=True)
    with open(f"{layout}/blobs/sha256/{d}", "wb") as f: f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}

def image(name, layers, config=None, fmt=None):
    """layers: uncompressed tars, bottom first; pushed gzip-compressed."""
    layout = f"{work}/{name}"
    subprocess.run(["rm", "-rf", layout], check=True)
    os.makedirs(layout)
    with open(f"{layout}/oci-layout", "w") as f: json.dump({"imageLayoutVersion": "1.0.0"}, f)
    descs = []
    for raw in layers:
        d = write_blob(layout, gzip.compress(raw, mtime=0))
        d["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
        descs.append(d)
    cfg = {"architecture": "amd64" if os.uname().machine == "x86_64" else "arm64", "os": "linux",
           "config": config or {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(r).hexdigest() for r in layers]}}
    c = write_blob(layout, json.dumps(cfg).encode())
    c["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": c, "layers": descs}
    m = write_blob(layout, json.dumps(manifest).encode())
    m["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    m["annotations"] = {"org.opencontainers.image.ref.name": "1"}
    with open(f"{layout}/index.json", "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [m]}, f)
    cmd = ["skopeo", "copy", "-q", "--dest-tls-verify=false"] + (["--format", fmt] if fmt else []) + \
          [f"oci:{layout}:1", f"docker://{registry}/{name}:1"]
    subprocess.run(cmd, check=True)
    return descs

base = tar_bytes(busybox)
# Docker schema 2 media types (skopeo converts), one layer.
image("busybox", [base], fmt="v2s2")

def lower(t):
    add(t, "etc", "dir"); add_file(t, "etc/lower-file", b"from the lower layer\n")
    add(t, "opt", "dir"); add(t, "opt/old", "dir"); add_file(t, "opt/old/a", b"a\n")
def upper(t):
    add_file(t, "etc/.wh.lower-file")
    add(t, "opt/old", "dir"); add_file(t, "opt/old/.wh..wh..opq"); add_file(t, "opt/old/b", b"b\n")
    add_file(t, "etc/added", b"from the upper layer\n")
image("layered", [base, tar_bytes(lower), tar_bytes(upper)], config={
    "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "IMAGE_VAR=from-image"], "WorkingDir": "/opt",
    "Cmd": ["/bin/sh", "-c", "echo image-cmd in $(pwd) $IMAGE_VAR"]})

# Images whose config has a User (steps and `agent exec --image` without a user run as
# it): numeric, names from the image's own /etc/passwd and /etc/group, and a name nobody has.
def accounts(t):
    add(t, "etc", "dir")
    add_file(t, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nbuilder:x:1500:1600:b:/home/builder:/bin/sh\n")
    add_file(t, "etc/group", b"root:x:0:\nbuilders:x:1600:\nstaff:x:1700:builder\n")
accounts_layer = tar_bytes(accounts)
for name, user in [("user-numeric", "1234:2345"), ("user-name", "builder"), ("user-name-group", "builder:staff"),
                   ("user-missing", "nobody-here")]:
    image(name, [base, accounts_layer], config={"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "User": user})

# Service images (README "Services"): one that exposes its port (the wait falls back to
# it), one whose only readiness signal is a Docker HEALTHCHECK that probes the network.
www = tar_bytes(lambda t: (add(t, "www", "dir"), add_file(t, "www/index.html", b"hello-from-image\n")))
image("httpd-exposed", [base, www], config={
    "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "ExposedPorts": {"8082/tcp": {}, "8082/udp": {}},
    "Cmd": ["httpd", "-f", "-p", "8082", "-h", "/www"]})
image("httpd-healthcheck", [base, www], config={
    "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["sh", "-c", "sleep 1; exec httpd -f -p 8083 -h /www"],
    "Healthcheck": {"Test": ["CMD-SHELL", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 127.0.0.1 8083 | grep -q hello-from-image"]}})

# Odd owners (README "Owners"): in subordinate mode the files carry them inside the
# container; 70000 is outside the test user's 65536 subordinate ids (a warning, not a
# failure); a setuid file and a file capability (cap_net_raw+ep, VFS_CAP_REVISION_2)
# must survive the chown; a symlink leading out is chowned itself, never its target.
def owned(t, name, uid, gid, mode, data=None, kind=None, target="", pax=None):
    i = tarfile.TarInfo(name); i.uid = uid; i.gid = gid; i.mode = mode
    if pax: i.pax_headers = pax
    if kind: i.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]; i.linkname = target
    if data is not None: i.size = len(data); t.addfile(i, io.BytesIO(data))
    else: t.addfile(i)
def owners(t):
    cap = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0).decode("utf-8", "surrogateescape")
    owned(t, "opt", 0, 0, 0o755, kind="dir")
    owned(t, "opt/owned", 1500, 1600, 0o750, kind="dir")
    owned(t, "opt/owned/file", 1500, 1600, 0o640, b"owned\n")
    owned(t, "opt/owned/hard", 1500, 1600, 0o640, kind="hardlink", target="opt/owned/file")
    owned(t, "opt/owned/link", 1500, 1600, 0o777, kind="symlink", target="file")
    owned(t, "opt/suid", 1500, 1600, 0o4755, b"#!/bin/sh\necho suid\n")
    owned(t, "opt/sgid", 0, 1600, 0o2755, b"#!/bin/sh\n")
    owned(t, "opt/cap", 0, 0, 0o755, b"#!/bin/sh\n", pax={"SCHILY.xattr.security.capability": cap})
    owned(t, "opt/far", 70000, 70000, 0o644, b"far\n")
    owned(t, "opt/link-out", 1500, 1600, 0o777, kind="symlink", target="/tmp/agent-owners-sentinel")
    owned(t, "opt/private", 1500, 1600, 0o700, kind="dir")
    owned(t, "opt/private/secret", 1500, 1600, 0o600, b"private\n")
    owned(t, "opt/private/deeper", 1500, 1600, 0o500, kind="dir")
    owned(t, "opt/private/deeper/x", 1501, 1601, 0o400, b"x\n")
image("owners", [base, tar_bytes(owners)])

# Hostile layers: each must fail the pull naming the image, the layer digest and the entry.
image("hostile-dotdot", [tar_bytes(lambda t: add_file(t, "../../../tmp/agent-escape", b"x"))])
image("hostile-symlink", [tar_bytes(lambda t: (add(t, "evil", "symlink", "/"), add_file(t, "evil/tmp/agent-escape", b"x")))])
image("hostile-hardlink", [tar_bytes(lambda t: add(t, "passwd", "hardlink", "../../../../etc/passwd"))])
image("hostile-whiteout", [tar_bytes(lambda t: (add(t, "a", "dir"), add_file(t, "a/.wh...")))])

# A blob the registry serves with other content than its digest: one byte flipped in its storage.
tampered = image("tampered", [tar_bytes(lambda t: add_file(t, "file", b"original content\n"))])
hexd = tampered[0]["digest"].split(":")[1]
path = f"{storage}/docker/registry/v2/blobs/sha256/{hexd[:2]}/{hexd}/data"
with open(path, "r+b") as f:
    b = f.read(1); f.seek(0); f.write(bytes([b[0] ^ 0xff]))
print(tampered[0]["digest"])
