// The parent-side helpers of a pod (Sources/Sandbox/Pod.swift): its namespaces opened by
// descriptor, and the TCP probe a service's health check uses.
#include "sys.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

int agent_sandbox_open_ns(int pid, const char *name) {
    char path[64];
    int n = 0;
    const char *pre = "/proc/";
    while (*pre) path[n++] = *pre++;
    char digits[12];
    int d = 0;
    unsigned v = (unsigned)pid;
    do { digits[d++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (d) path[n++] = digits[--d];
    const char *mid = "/ns/";
    while (*mid) path[n++] = *mid++;
    for (const char *c = name; *c && n < (int)sizeof path - 1; c++) path[n++] = *c;
    path[n] = 0;
    long fd = SB4(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
    return (int)fd;
}

struct sb_probe {
    int user_fd, net_fd, port, timeout_ms;
    volatile int result;   /* 1 connected, 0 not, -errno the child failed */
};

/// The probe child: raw system calls only, on its own stack, writing nothing of the agent's
/// but `result` (it shares the agent's memory until it exits).
static int sb_probe_entry(void *arg) {
    struct sb_probe *p = arg;
    long r = SB2(SYS_setns, p->user_fd, CLONE_NEWUSER);
    if (r >= 0) r = SB2(SYS_setns, p->net_fd, CLONE_NEWNET);
    if (r < 0) { p->result = (int)r; SB1(SYS_exit, 0); }
    long s = SB3(SYS_socket, AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) { p->result = (int)s; SB1(SYS_exit, 0); }
    struct sockaddr_in sa;
    for (size_t k = 0; k < sizeof sa; k++) ((char *)&sa)[k] = 0;
    sa.sin_family = AF_INET;
    sa.sin_port = (uint16_t)(((p->port & 0xff) << 8) | ((p->port >> 8) & 0xff));
    sa.sin_addr.s_addr = 0x0100007f;  /* 127.0.0.1 in network byte order on little endian */
    {
        uint32_t one = 1;
        if (*(uint8_t *)&one == 0) sa.sin_addr.s_addr = 0x7f000001;  /* big endian */
    }
    r = SB3(SYS_connect, s, &sa, sizeof sa);
    int ok = 0;
    if (r == 0) ok = 1;
    else if (r == -EINPROGRESS) {
        struct pollfd pf = { (int)s, POLLOUT, 0 };
        struct timespec ts = { p->timeout_ms / 1000, (long)(p->timeout_ms % 1000) * 1000000L };
        long n = SB5(SYS_ppoll, &pf, 1, &ts, 0, 8);
        if (n == 1) {
            int err = -1;
            socklen_t len = sizeof err;
            if (SB5(SYS_getsockopt, s, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) ok = 1;
        }
    }
    SB1(SYS_close, s);
    p->result = ok;
    SB1(SYS_exit, 0);
    __builtin_unreachable();
}

int agent_sandbox_pod_connect(int user_fd, int net_fd, int port, int timeout_ms) {
    struct sb_probe p = { user_fd, net_fd, port, timeout_ms, -ECHILD };
    char stack[8192] __attribute__((aligned(16)));
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int pidfd = -1;
    int r = clone(sb_probe_entry, stack + sizeof stack, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &p, &pidfd);
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r < 0) return -e;
    int status = 0;
    agent_sandbox_pidfd_reap(pidfd, &status);
    close(pidfd);
    return p.result;
}
