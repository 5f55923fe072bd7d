// Small parent-side wrappers for calls Swift's Glibc module does not export
// (they need _GNU_SOURCE). These run in the agent, never in the child.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "include/agent_sandbox.h"

int agent_sandbox_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno; }

int agent_sandbox_socketpair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0 ? 0 : -errno;
}

int agent_sandbox_eventfd(void) {
    int fd = eventfd(0, EFD_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

int agent_sandbox_open_path_dir(const char *path) {
    int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

int agent_sandbox_plan_memfd_empty(void) {
    int fd = memfd_create("agent-plan", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    return fd >= 0 ? fd : -errno;
}

int agent_sandbox_plan_memfd_fill(int fd, const void *buf, size_t len) {
    size_t off = 0;
    while (off < len) {
        ssize_t w = pwrite(fd, (const char *)buf + off, len - off, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? -errno : -EIO;
        off += (size_t)w;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) return -errno;
    return 0;
}

int agent_sandbox_plan_memfd(const void *buf, size_t len) {
    int fd = agent_sandbox_plan_memfd_empty();
    if (fd < 0) return fd;
    int r = agent_sandbox_plan_memfd_fill(fd, buf, len);
    if (r < 0) { close(fd); return r; }
    return fd;
}

int agent_sandbox_open_init(const char *path, unsigned uid) {
    int fd = open(path, O_PATH | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) { int e = errno; close(fd); return -e; }
    if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IWGRP | S_IWOTH)) || (st.st_uid != 0 && st.st_uid != uid)) {
        close(fd);
        return -EPERM;
    }
    return fd;
}

int agent_sandbox_pin_here(struct agent_sandbox_affinity *saved) {
    _Static_assert(sizeof saved->bits >= sizeof(cpu_set_t), "room for a cpu_set_t");
    cpu_set_t *old = (cpu_set_t *)saved->bits;
    if (sched_getaffinity(0, sizeof *old, old) < 0 || CPU_COUNT(old) < 2) return 0;
    int cpu = sched_getcpu();
    if (cpu < 0 || !CPU_ISSET(cpu, old)) return 0;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return sched_setaffinity(0, sizeof one, &one) == 0;
}

void agent_sandbox_restore_affinity(const struct agent_sandbox_affinity *saved) {
    sched_setaffinity(0, sizeof(cpu_set_t), (const cpu_set_t *)saved->bits);
}

int agent_sandbox_get_affinity(struct agent_sandbox_affinity *out) {
    memset(out, 0, sizeof *out);
    return sched_getaffinity(0, sizeof(cpu_set_t), (cpu_set_t *)out->bits) == 0 ? 0 : -errno;
}
