#!/usr/bin/env bash
# Builds a tiny root filesystem from Debian's busybox-static: ci/make-busybox-rootfs.sh DIR
set -euo pipefail
dir=${1:?usage: make-busybox-rootfs.sh DIR}
bb=$(command -v busybox || true)
[ -x /bin/busybox ] && bb=/bin/busybox
[ -n "$bb" ] || { echo "busybox not found: apt-get install -y busybox-static" >&2; exit 1; }
mkdir -p "$dir"/{bin,sbin,etc,proc,dev,tmp,workspace,root,usr/bin}
cp "$bb" "$dir/bin/busybox"
for applet in $("$dir/bin/busybox" --list); do
  [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/etc/passwd"
echo 'root:x:0:' > "$dir/etc/group"
# As in Docker images: the files a container's network set-up binds over (the tree is
# root-owned, so nothing can be created in it from inside).
echo '127.0.0.1 localhost' > "$dir/etc/hosts"
: > "$dir/etc/resolv.conf"
chmod -R a+rX "$dir"
