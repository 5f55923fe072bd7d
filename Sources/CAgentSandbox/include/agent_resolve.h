// Why this shim exists: openat2(2) and struct open_how are not exported by Glibc's Swift
// module and syscall(2) is variadic (unavailable in Swift). The agent reads files out of a
// container's root (test reports) with RESOLVE_IN_ROOT so no path can lead out of it.
#ifndef AGENT_RESOLVE_H
#define AGENT_RESOLVE_H

#include <stddef.h>

/// openat2(rootfd, path, flags|O_CLOEXEC) resolving `path` as if `rootfd` were "/"
/// (RESOLVE_IN_ROOT) and refusing magic links. Returns an fd, or -1 with errno set.
int agent_resolve_open_in_root(int rootfd, const char *path, int flags);

/// openat2(dirfd, path, flags|O_CLOEXEC) with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS:
/// `..`, an absolute path or a symlink that would lead out of `dirfd` fails with EXDEV.
/// How a job's host paths are opened beneath the folder they were granted.
int agent_resolve_open_beneath(int dirfd, const char *path, int flags);

/// Opens `path` (relative to `dirfd`) without following any symlink on the way, as
/// agent-init opens an admitted host path (no RESOLVE_BENEATH: the path is absolute).
int agent_resolve_open_nosymlinks(int dirfd, const char *path, int flags);

/// openat2 with RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: how image
/// layers are unpacked. No symlink at all is followed (one planted by the layer itself
/// fails with ELOOP), and `..` cannot climb above `rootfd`. `mode` applies with O_CREAT.
int agent_resolve_open_in_root_nosymlinks(int rootfd, const char *path, int flags, unsigned mode);

/// fsetxattr(2) (Swift's Glibc module does not export <sys/xattr.h>): image unpacking
/// marks opaque folders with `user.overlay.opaque`.
int agent_resolve_fsetxattr(int fd, const char *name, const char *value, size_t size);

/// llistxattr(2) and lgetxattr(2) (never following a final symlink): layer writing reads a
/// staged file's xattrs by `/proc/self/fd/DIRFD/NAME`. Return the size, or -1 with errno.
long agent_resolve_llistxattr(const char *path, char *list, size_t size);
long agent_resolve_lgetxattr(const char *path, const char *name, void *value, size_t size);

#endif
