// Raw system call helpers for the child (spawn.c, between the clone and its execveat of
// agent-init) and for agent-init itself (Sources/agent-init, which includes this header).
// Each returns the result or -errno and touches no libc state beyond the thread's own errno
// slot (syscall(2) takes no locks), which is what makes them safe after a fork-like clone.
#ifndef AGENT_SANDBOX_SYS_H
#define AGENT_SANDBOX_SYS_H

#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "include/agent_sandbox.h"

#ifdef SB_NOLIBC
/// agent-init links no libc at all (see agent-init/start.c): the system call instruction itself.
static inline long sb_sys(long n, long a, long b, long c, long d, long e, long f) {
#if defined(__x86_64__)
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return r;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c,
                  x3 __asm__("x3") = d, x4 __asm__("x4") = e, x5 __asm__("x5") = f;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
#else
#error "agent-init: add this architecture's system call instruction"
#endif
}
#else
static inline long sb_sys(long n, long a, long b, long c, long d, long e, long f) {
    long r = syscall(n, a, b, c, d, e, f);
    return r < 0 ? -errno : r;
}
#endif
#define SB0(n) sb_sys((n), 0, 0, 0, 0, 0, 0)
#define SB1(n, a) sb_sys((n), (long)(a), 0, 0, 0, 0, 0)
#define SB2(n, a, b) sb_sys((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define SB3(n, a, b, c) sb_sys((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define SB4(n, a, b, c, d) sb_sys((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define SB5(n, a, b, c, d, e) sb_sys((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)
#define SB6(n, a, b, c, d, e, f) sb_sys((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

// Internal symbols are hidden: the module's only exported names are agent_sandbox_*.
#define SB_HIDDEN __attribute__((visibility("hidden")))

/// Descriptors the child keeps from the clone on: 0-2 stdio, 3 error, 4 status, 5 release,
/// 6 sync (closed once the sync byte arrived), 7 the plan (a sealed memfd, which agent-init
/// maps and closes), 8 agent-init itself (close-on-exec: gone with the execveat).
/// Everything above is closed before the execveat.
#define SB_KEPT_FDS 9
#define SB_SYNC_FD 6
#define SB_PLAN_FD 7
#define SB_EXE_FD 8

/// The child's error pipe (moved to fd 3 once stdio is in place).
SB_HIDDEN extern int sb_error_fd;

/// Reports `{stage, op, errno}` on the error pipe and exits with 125 (never returns).
SB_HIDDEN __attribute__((noreturn)) void sb_fail(int stage, int op, long err);

static inline size_t sb_strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

/// Writes "/proc/self/fd/N" into `buf` (at least 32 bytes), for mount(2) onto a descriptor.
static inline const char *sb_fd_path(char *buf, int fd) {
    const char *prefix = "/proc/self/fd/";
    size_t i = 0;
    while (prefix[i]) { buf[i] = prefix[i]; i++; }
    char digits[12];
    int n = 0;
    unsigned v = (unsigned)fd;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) buf[i++] = digits[--n];
    buf[i] = 0;
    return buf;
}

/// Sets up the container from inside agent-init (mounts, pivot_root); see agent-init/setup.c.
SB_HIDDEN void sb_setup_root(const struct agent_sandbox_plan *p);

/// A pod's holder: lo up and the routes, no root (see agent-init/setup.c).
SB_HIDDEN void sb_setup_pod(const struct agent_sandbox_plan *p);

/// Installs the plan's routes and rules (outbound network); see agent-init/net.c.
SB_HIDDEN void sb_net_routes(const struct agent_sandbox_plan *p);

/// agent-init's clone(2) onto `stack` (its top) running `fn(arg)` in the child, which exits
/// with its result; returns the child's pid or -errno (see agent-init/start.c).
SB_HIDDEN long sb_clone_fn(int (*fn)(void *), void *stack, unsigned long flags, void *arg);

/// Runs the init loop; forks and execs the command; see agent-init/init.c. Never returns.
SB_HIDDEN __attribute__((noreturn)) void sb_run_init(const struct agent_sandbox_plan *p);

#endif
