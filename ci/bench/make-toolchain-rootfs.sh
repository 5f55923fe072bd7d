#!/usr/bin/env bash
# A small C toolchain root filesystem from the host's own gcc, binutils, libc headers and
# ccache (offline; Debian 12), on the busybox rootfs: ci/bench/make-toolchain-rootfs.sh DIR
# (ci/bench/build.sh builds its C project in an image made from it).
set -euo pipefail
dir=${1:?usage: make-toolchain-rootfs.sh DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/make-busybox-rootfs.sh" "$dir"
gccdir=$(dirname "$(gcc -print-prog-name=cc1)")
bins=(/usr/bin/gcc /usr/bin/as /usr/bin/ld /usr/bin/ccache "$(readlink -f /usr/bin/gcc)" "$(readlink -f /usr/bin/as)"
      "$(readlink -f /usr/bin/ld)")
copy() { cp -a --parents "$@" "$dir/" 2>/dev/null || true; }
copy "${bins[@]}" /usr/lib/gcc /usr/include /usr/lib/x86_64-linux-gnu/{crt1.o,crti.o,crtn.o,Scrt1.o,libc.so,libc_nonshared.a,libm.so,libm.a,libmvec.so,libmvec.a}
# Shared libraries of every program the compiler runs (ldd closure), and the loader.
for p in "${bins[@]}" "$gccdir"/cc1 "$gccdir"/collect2 "$gccdir"/lto-wrapper "$gccdir"/liblto_plugin.so; do
  [ -e "$p" ] || continue
  for lib in $(ldd "$p" 2>/dev/null | grep -o '/[^ ]*'); do copy "$lib" "$(readlink -f "$lib")"; done
done
copy /lib64/ld-linux-x86-64.so.2 /usr/lib64/ld-linux-x86-64.so.2 "$(readlink -f /lib64/ld-linux-x86-64.so.2)"
# The compiler's names point straight at the programs (Debian's chains have middle links).
for n in gcc as ld; do ln -sfn "$(basename "$(readlink -f /usr/bin/$n)")" "$dir/usr/bin/$n"; done
ln -sfn gcc "$dir/usr/bin/cc"
# Merged /usr, as Debian: /lib and /lib64 are the /usr ones (libc.so names /lib/...).
for l in lib lib64; do
  if [ -d "$dir/$l" ] && [ ! -L "$dir/$l" ]; then cp -a "$dir/$l/." "$dir/usr/$l/" && rm -rf "$dir/$l"; fi
  mkdir -p "$dir/usr/$l"; ln -sfn "usr/$l" "$dir/$l"
done
chmod -R a+rX "$dir"
