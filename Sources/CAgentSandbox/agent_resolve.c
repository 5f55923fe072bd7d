#define _GNU_SOURCE
#include "agent_resolve.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/// openat2(dirfd, path, flags|O_CLOEXEC) with `resolve`; `mode` only with O_CREAT/O_TMPFILE.
static int sb_openat2(int dirfd, const char *path, int flags, unsigned mode, unsigned long long resolve) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

int agent_resolve_open_in_root(int rootfd, const char *path, int flags) {
    return sb_openat2(rootfd, path, flags, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

int agent_resolve_open_beneath(int dirfd, const char *path, int flags) {
    return sb_openat2(dirfd, path, flags, 0, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
}

int agent_resolve_open_nosymlinks(int dirfd, const char *path, int flags) {
    return sb_openat2(dirfd, path, flags, 0, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
}

int agent_resolve_open_in_root_nosymlinks(int rootfd, const char *path, int flags, unsigned mode) {
    return sb_openat2(rootfd, path, flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
}

#include <sys/xattr.h>
int agent_resolve_fsetxattr(int fd, const char *name, const char *value, size_t size) {
    return fsetxattr(fd, name, value, size, 0);
}

long agent_resolve_llistxattr(const char *path, char *list, size_t size) {
    return (long)llistxattr(path, list, size);
}
long agent_resolve_lgetxattr(const char *path, const char *name, void *value, size_t size) {
    return (long)lgetxattr(path, name, value, size);
}
