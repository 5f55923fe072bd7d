#define _GNU_SOURCE
#include "agent_sys.h"

#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

const int agent_o_path = O_PATH;

int agent_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

int agent_pipe_cloexec(int fds[2], int nonblock) {
    return pipe2(fds, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0));
}

int agent_disable_core_dumps(void) {
    // The rlimit first: even if prctl failed, no core file would be written.
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0) return -1;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return -1;
    return 0;
}

int agent_get_dumpable(void) {
    return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
}

int agent_capbset_read(unsigned long cap) {
    return prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
}

const void *agent_memrchr(const void *s, int c, unsigned long n) {
    return memrchr(s, c, n);
}
