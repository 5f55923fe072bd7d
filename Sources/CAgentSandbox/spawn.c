// The parent-side spawn and the first steps of the child, up to its execveat of agent-init.
//
// The child shares the agent's memory (CLONE_VM | CLONE_VFORK, with its own namespaces),
// only for microseconds: it moves its descriptors into place, raises its capabilities into
// the ambient set (so they survive the exec while its uid is not mapped yet) and execs
// agent-init, a small static program. No copy of the agent's address space is ever made. Everything else (waiting for the id
// maps, the root, PID 1) happens there, in a fresh image that maps nothing of the agent.
//
// PR_SET_PDEATHSIG fires when the *thread* that created the child exits, not the process.
// Swift's cooperative pool threads come and go, so the clone happens on the container's
// own supervisor thread (see Launcher.swift), which reaps the init before it ends: the
// init dies with that thread, hence with the agent, and never before it was reaped.
#include "sys.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <linux/capability.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#endif

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/// The child's error pipe. The child shares the agent's memory until its execveat
/// (CLONE_VM, see sb_clone) and runs on the parent thread's TLS, whose thread is suspended
/// meanwhile (CLONE_VFORK): thread-local, so concurrent starts never share it.
static __thread int sb_child_error_fd = -1;

__attribute__((noreturn)) static void sb_child_fail(int stage, int op, long err) {
    struct agent_sandbox_failure f = { stage, op, (int32_t)(err < 0 ? -err : err) };
    if (sb_child_error_fd >= 0) SB3(SYS_write, sb_child_error_fd, &f, sizeof f);
    SB1(SYS_exit_group, 125);
    __builtin_unreachable();
}

/// Moves the nine descriptors the child keeps to 0..8 (stdio, error, status, release, sync,
/// plan, agent-init) without clobbering one with another, then closes everything else.
/// All but agent-init's own (8) survive the execveat; agent-init marks 3..6 close-on-exec.
///
/// This runs first thing in the child, before it waits on anything: the clone copied the
/// agent's whole descriptor table, including the parent's end of our own sync pipe and the
/// pipes of every other container being started at the same moment. Holding those while
/// waiting would mean (a) never seeing EOF on the sync pipe if the agent dies (we would hold
/// a write end ourselves) and (b) another container's start waiting on our id mapping (its
/// error pipe would not reach EOF). Everything the child opens later (host sources, overlay
/// layers) it opens itself, by path, after the sync; nothing else of the parent is needed.
static void sb_arrange_fds(const struct agent_sandbox_plan *p, int plan_fd, int init_fd) {
    int want[SB_KEPT_FDS] = { p->stdio[0], p->stdio[1], p->stdio[2], p->error_fd, p->status_fd, p->release_fd,
                              p->sync_fd, plan_fd, init_fd };
    int top = 0;
    for (int i = 0; i < SB_KEPT_FDS; i++) if (want[i] > top) top = want[i];
    // First above every wanted fd (so no dup3 below overwrites one not yet moved), then down.
    int tmp[SB_KEPT_FDS];
    for (int i = 0; i < SB_KEPT_FDS; i++) {
        long r = SB3(SYS_fcntl, want[i], F_DUPFD_CLOEXEC, top + 1);
        if (r < 0) sb_child_fail(AGENT_STAGE_STDIO, -1, r);
        tmp[i] = (int)r;
        if (i == 3) sb_child_error_fd = tmp[i];
    }
    for (int i = 0; i < SB_KEPT_FDS; i++) {
        // Everything but agent-init's own descriptor survives the execveat into agent-init.
        long r = SB3(SYS_dup3, tmp[i], i, i == SB_EXE_FD ? O_CLOEXEC : 0);
        if (r < 0) sb_child_fail(AGENT_STAGE_STDIO, -1, r);
        if (i == 3) sb_child_error_fd = 3;
    }
    // close_range (5.9) is there: the shim needs mount_setattr (5.12) anyway.
    long r = SB3(SYS_close_range, SB_KEPT_FDS, ~0U, 0);
    if (r < 0) sb_child_fail(AGENT_STAGE_STDIO, -1, r);
}

/// Raises every capability the child holds (all of them, in its new user namespace) into
/// its inheritable and ambient sets. The exec of agent-init happens before the parent wrote
/// the id maps, so the child's uid is no uid of the namespace (not its root): without ambient
/// capabilities the exec would clear them all. agent-init clears both sets again at once.
static void sb_keep_caps_across_exec(void) {
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    long r = SB2(SYS_capget, &hdr, data);
    if (r < 0) sb_child_fail(AGENT_STAGE_INIT_EXEC, -1, r);
    // Inheritable may only take capabilities of the bounding set (past the last one: EINVAL).
    uint32_t bset[2] = { 0, 0 };
    for (long c = 0; c < 64; c++)
        if (SB2(SYS_prctl, PR_CAPBSET_READ, c) == 1) bset[c / 32] |= 1u << (c % 32);
    for (int k = 0; k < 2; k++) data[k].inheritable = data[k].permitted & bset[k];
    r = SB2(SYS_capset, &hdr, data);
    if (r < 0) sb_child_fail(AGENT_STAGE_INIT_EXEC, -1, r);
    for (long c = 0; c < 64; c++)
        if (data[c / 32].inheritable & (1u << (c % 32))) {
            r = SB5(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0);
            if (r < 0) sb_child_fail(AGENT_STAGE_INIT_EXEC, (int)c, r);
        }
}

/// The child's entry: becomes agent-init as soon as its descriptors are in place.
__attribute__((noreturn)) static void sb_child(const struct agent_sandbox_plan *p, int plan_fd, int init_fd) {
    sb_child_error_fd = p->error_fd;
    // Die with the supervisor thread (the agent); the PID namespace goes with us. The
    // setting survives the execveat (agent-init is neither set-id nor file-capable).
    SB2(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
    // Only our own descriptors from here on (see above).
    sb_arrange_fds(p, plan_fd, init_fd);
    sb_keep_caps_across_exec();
    // "Is the parent still there?" after PR_SET_PDEATHSIG: agent-init answers it with the
    // sync pipe, whose only write end is now the agent's (EOF: it died, agent-init exits).
    static char *const argv[] = { "init", 0 };
    static char *const envp[] = { 0 };
    long r = SB5(SYS_execveat, SB_EXE_FD, "", argv, envp, AT_EMPTY_PATH);
    sb_child_fail(AGENT_STAGE_INIT_EXEC, -1, r);
}

struct sb_child_args {
    const struct agent_sandbox_plan *plan;
    int plan_fd, init_fd;
};

static int sb_child_entry(void *arg) {
    const struct sb_child_args *a = arg;
    sb_child(a->plan, a->plan_fd, a->init_fd);
}

/// clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | flags), as posix_spawn does it: the child
/// borrows the agent's memory (no page table of the agent is copied) on a stack of its own
/// until its execveat of agent-init, and this thread waits until then. So when this returns
/// the child is agent-init (or has exited, its failure on the error pipe) in a fresh mm.
static long sb_clone(const struct agent_sandbox_plan *p, int plan_fd, int init_fd, uint64_t flags, int *pidfd) {
    struct sb_child_args a = { p, plan_fd, init_fd };
    // The child's frames are small (a few hundred bytes); this thread is suspended meanwhile.
    char stack[16384] __attribute__((aligned(16)));
    int r = clone(sb_child_entry, stack + sizeof stack, (int)(flags | CLONE_VM | CLONE_VFORK | CLONE_PIDFD) | SIGCHLD,
                  &a, pidfd);
    return r < 0 ? -errno : r;
}

/// A pod member (plan->join_user_fd >= 0). The container's namespaces must be made *inside*
/// the pod's user namespace (owned by it, so its init holds capabilities over them), which
/// clone(CLONE_NEW*) from the agent's namespace cannot do. So an intermediate child joins the
/// pod's user and network namespaces (setns: the agent's uid owns the pod's user namespace,
/// so it holds every capability there), unshares mount, IPC, UTS, cgroup and PID namespaces
/// (the last one applies to its children), and clones the init with CLONE_PARENT: the init
/// is the agent's child, as any other container's, PID 1 of the new PID namespace, and goes
/// on exactly as sb_child does. The intermediate child exits once the init has exec'd
/// agent-init (CLONE_VFORK); its parent thread reaps it.
struct sb_join_args {
    struct sb_child_args child;
    uint64_t flags;            /* the namespaces to unshare */
    char *stack;               /* the init's stack (top), while it shares our memory */
    volatile long init_pid;    /* the init's pid (in the agent's PID namespace), or -errno */
    volatile uint64_t used;    /* the flags that worked */
};

static int sb_join_entry(void *arg) {
    struct sb_join_args *a = arg;
    const struct agent_sandbox_plan *p = a->child.plan;
    sb_child_error_fd = p->error_fd;
    // Order: the user namespace first (it grants the capabilities the rest needs), then the
    // network namespace it owns, then the new namespaces, all owned by the pod's.
    long r = SB2(SYS_setns, p->join_user_fd, CLONE_NEWUSER);
    if (r < 0) sb_child_fail(AGENT_STAGE_JOIN_USERNS, -1, r);
    r = SB2(SYS_setns, p->join_net_fd, CLONE_NEWNET);
    if (r < 0) sb_child_fail(AGENT_STAGE_JOIN_NETNS, -1, r);
    uint64_t flags = a->flags;
    r = SB1(SYS_unshare, flags);
    if ((r == -EINVAL || r == -EPERM) && (flags & CLONE_NEWCGROUP)) {
        flags &= ~(uint64_t)CLONE_NEWCGROUP;
        r = SB1(SYS_unshare, flags);
    }
    if (r < 0) sb_child_fail(AGENT_STAGE_JOIN_UNSHARE, -1, r);
    a->used = flags;
    int c = clone(sb_child_entry, a->stack, CLONE_VM | CLONE_VFORK | CLONE_PARENT | SIGCHLD, &a->child);
    a->init_pid = c < 0 ? -errno : c;
    if (c < 0) sb_child_fail(AGENT_STAGE_JOIN_CLONE, -1, -errno);
    SB1(SYS_exit, 0);
    __builtin_unreachable();
}

/// The pod member's spawn: returns the init's pid and a pidfd of it (pidfd_open: the init is
/// our child and unreaped, so its pid cannot be reused meanwhile), once the intermediate
/// child is reaped. A failure before the init's exec is on the error pipe as usual.
static long sb_clone_join(const struct agent_sandbox_plan *p, int plan_fd, int init_fd, uint64_t flags, int *pidfd,
                          uint64_t *used) {
    struct sb_join_args a = { { p, plan_fd, init_fd }, flags, 0, 0, 0 };
    char stack[16384] __attribute__((aligned(16)));
    char init_stack[16384] __attribute__((aligned(16)));
    a.stack = init_stack + sizeof init_stack;
    a.init_pid = -ECHILD;
    int mid_fd = -1;
    int r = clone(sb_join_entry, stack + sizeof stack, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &a, &mid_fd);
    if (r < 0) return -errno;
    int status = 0;
    agent_sandbox_pidfd_reap(mid_fd, &status);
    close(mid_fd);
    if (a.init_pid < 0) return status == 0 ? a.init_pid : -EIO;
    long fd = SB2(SYS_pidfd_open, a.init_pid, 0);
    if (fd < 0) {
        // Without a pidfd nobody would reap it: it is ours, so kill and reap it by pid.
        SB2(SYS_kill, a.init_pid, SIGKILL);
        SB4(SYS_wait4, a.init_pid, &status, 0, 0);
        return fd;
    }
    *pidfd = (int)fd;
    *used = a.used;
    return a.init_pid;
}

// The agent makes itself non-dumpable at start (Agent.swift). A non-dumpable child's
// /proc/<pid>/{uid_map,gid_map,setgroups} are owned by root, so the agent could not write
// its maps. The exec of agent-init (a readable file, no id change) makes the child dumpable,
// but only late in the exec: the new mm starts with the flags of the one it replaces (the
// agent's), and CLONE_VFORK lets this thread go on as soon as the old mm is released, before
// that. So the flag is lifted around the clone only: set 1, clone (the child is dumpable
// from the start to its exec and after it, until sb_run_init clears it), set back. The lock
// keeps a concurrent spawn from restoring 0 between another's set and clone. A process that
// was dumpable to begin with is untouched.
static pthread_mutex_t sb_dumpable_lock = PTHREAD_MUTEX_INITIALIZER;

static long sb_clone_dumpable(const struct agent_sandbox_plan *p, int plan_fd, int init_fd, uint64_t flags,
                              int *pidfd) {
    pthread_mutex_lock(&sb_dumpable_lock);
    int was = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    if (was == 0) prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    long r = sb_clone(p, plan_fd, init_fd, flags, pidfd);
    if (was == 0) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    pthread_mutex_unlock(&sb_dumpable_lock);
    return r;
}

int agent_sandbox_spawn(const struct agent_sandbox_plan *plan, int plan_fd, int init_fd, int *pid, int *pidfd,
                        uint64_t *used_flags) {
    if (plan->version != AGENT_SANDBOX_PLAN_VERSION || plan_fd < 0 || init_fd < 0) return -EINVAL;
    // Every signal blocked across the clone, so the child starts with nothing pending from
    // a handler and the Swift runtime's signal use never lands in it (the init then sets
    // its own mask and dispositions).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int fd = -1;
    uint64_t flags = plan->clone_flags;
    if (plan->join_user_fd >= 0) {
        long r = sb_clone_join(plan, plan_fd, init_fd, flags, &fd, &flags);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) return (int)r;
        *pid = (int)r;
        *pidfd = fd;
        *used_flags = flags;
        return 0;
    }
    long r = sb_clone_dumpable(plan, plan_fd, init_fd, flags, &fd);
    if ((r == -EINVAL || r == -EPERM) && (flags & CLONE_NEWCGROUP)) {
        flags &= ~(uint64_t)CLONE_NEWCGROUP;
        r = sb_clone_dumpable(plan, plan_fd, init_fd, flags, &fd);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r < 0) return (int)r;
    *pid = (int)r;
    *pidfd = fd;
    *used_flags = flags;
    return 0;
}

int agent_sandbox_pidfd_signal(int pidfd, int sig) {
    return (int)SB4(SYS_pidfd_send_signal, pidfd, sig, 0, 0);
}

int agent_sandbox_pidfd_reap(int pidfd, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    long r;
    do { r = SB5(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED, 0); } while (r == -EINTR);
    if (r < 0) return (int)r;
    if (info.si_code == CLD_EXITED) *status = (info.si_status & 0xff) << 8;
    else *status = info.si_status & 0x7f;
    return 0;
}

unsigned agent_sandbox_last_cap(void) {
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 40;
    char buf[16] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 40;
    unsigned v = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) v = v * 10 + (unsigned)(buf[i] - '0');
    return v ? v : 40;
}
