// Small parent-side wrappers for calls Swift's Glibc module does not export
// (they need _GNU_SOURCE). These run in the agent, never in the child.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "include/agent_sandbox.h"

int agent_sandbox_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno; }

int agent_sandbox_eventfd(void) {
    int fd = eventfd(0, EFD_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

int agent_sandbox_open_path_dir(const char *path) {
    int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}
