// The container's init (PID 1) and the command's last steps before execve.
//
// Init keeps every signal blocked and reads them from a signalfd: SIGCHLD reaps any
// child (orphans are re-parented to PID 1), SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR* are
// forwarded to the command. When the command exits, init kills what is left in the
// PID namespace, reports the raw wait status on the status pipe and exits (or, with
// keep-alive, first waits for EOF on the release pipe so the parent can read the root).
#include "../CAgentSandbox/sys.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define SB_NSIG 65

// The kernel's sigaction layout (glibc's differs); enough for SIG_DFL without a restorer.
struct sb_kernel_sigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
};

static int sb_is_exec_miss(long e) { return e == -ENOENT || e == -ENOTDIR || e == -EACCES || e == -ELOOP || e == -ENAMETOOLONG; }

/// execve with a PATH lookup done by hand in the given environment's PATH.
static long sb_exec(const struct agent_sandbox_plan *p) {
    const char *cmd = p->argv[0];
    for (const char *c = cmd; *c; c++)
        if (*c == '/') return SB3(SYS_execve, cmd, p->argv, p->envp);
    size_t clen = sb_strlen(cmd);
    const char *dir = p->path_search;
    long first = -ENOENT;
    int saw_eacces = 0;
    while (1) {
        const char *end = dir;
        while (*end && *end != ':') end++;
        size_t dlen = (size_t)(end - dir);
        if (dlen + clen + 2 <= p->scratch_len) {
            char *b = p->scratch;
            size_t n = 0;
            if (dlen == 0) b[n++] = '.';
            for (size_t k = 0; k < dlen; k++) b[n++] = dir[k];
            b[n++] = '/';
            for (size_t k = 0; k < clen; k++) b[n++] = cmd[k];
            b[n] = 0;
            long r = SB3(SYS_execve, b, p->argv, p->envp);
            if (!sb_is_exec_miss(r)) return r;
            if (r == -EACCES) saw_eacces = 1;
        }
        if (!*end) break;
        dir = end + 1;
    }
    return saw_eacces ? -EACCES : first;
}

/// The command: runs in a CLONE_VM child of init in a nested user namespace (see
/// sb_run_init), so no copy of init's memory is made only to be thrown away by the execve. The child runs on its own stack, writes nothing of init's but that stack (and
/// the shared errno slot), and makes raw system calls only.
/// The two pipes between init and the command child while they share memory (see sb_run_init).
static int sb_ready_fds[2] = { -1, -1 };  /* init -> command: the nested maps are written */
static int sb_exec_fds[2] = { -1, -1 };   /* command holds the write end (close-on-exec) */

__attribute__((noreturn)) static void sb_command(const struct agent_sandbox_plan *p) {
    // Our copies of the init's ends go first: only the write end of the exec pipe stays,
    // and it closes with the execve (that EOF is how the init learns the exec happened).
    SB1(SYS_close, sb_ready_fds[1]);
    SB1(SYS_close, sb_exec_fds[0]);
    char go = 0;
    long r;
    do { r = SB3(SYS_read, sb_ready_fds[0], &go, 1); } while (r == -EINTR);
    if (r != 1) sb_fail(AGENT_STAGE_NESTED_MAPS, -1, r < 0 ? r : EPIPE);
    SB1(SYS_close, sb_ready_fds[0]);
    r = SB0(SYS_setsid);  // no TIOCSTI into the agent's terminal
    if (r < 0) sb_fail(AGENT_STAGE_SETSID, -1, r);
    uint64_t empty = 0;
    SB4(SYS_rt_sigprocmask, SIG_SETMASK, &empty, 0, 8);
    for (size_t i = 0; i < p->n_rlimits; i++) {
        struct rlimit64 { uint64_t cur, max; } lim = { p->rlimits[i].soft, p->rlimits[i].hard };
        r = SB4(SYS_prlimit64, 0, p->rlimits[i].resource, &lim, 0);
        if (r < 0) sb_fail(AGENT_STAGE_RLIMIT, (int)i, r);
    }
    r = SB1(SYS_chdir, p->cwd);  // after pivot_root: it cannot name anything outside
    if (r < 0) sb_fail(AGENT_STAGE_CHDIR, -1, r);
    // The bounding set needs CAP_SETPCAP, which setresuid to a non-zero uid takes away.
    for (uint32_t c = 0; c <= p->last_cap && c < 64; c++) {
        if (p->cap_mask & (1ULL << c)) continue;
        r = SB2(SYS_prctl, PR_CAPBSET_DROP, c);
        if (r < 0 && r != -EINVAL) sb_fail(AGENT_STAGE_CAPBSET, (int)c, r);
    }
    SB5(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (p->clear_groups) {
        r = SB2(SYS_setgroups, 0, 0);
        if (r < 0) sb_fail(AGENT_STAGE_SETGROUPS, -1, r);
    }
    r = SB3(SYS_setresgid, p->gid, p->gid, p->gid);
    if (r < 0) sb_fail(AGENT_STAGE_SETRESGID, -1, r);
    r = SB3(SYS_setresuid, p->uid, p->uid, p->uid);
    if (r < 0) sb_fail(AGENT_STAGE_SETRESUID, -1, r);
    // Permitted and effective become the policy mask, limited to what we still hold
    // (nothing once a non-zero uid was taken: Linux semantics). Inheritable stays empty
    // (CVE-2022-24769); ambient was cleared above.
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    r = SB2(SYS_capget, &hdr, data);
    if (r < 0) sb_fail(AGENT_STAGE_CAPSET, -1, r);
    uint64_t have = (uint64_t)data[0].permitted | ((uint64_t)data[1].permitted << 32);
    uint64_t keep = have & p->cap_mask;
    for (int k = 0; k < 2; k++) {
        data[k].effective = data[k].permitted = (uint32_t)(keep >> (32 * k));
        data[k].inheritable = 0;
    }
    r = SB2(SYS_capset, &hdr, data);
    if (r < 0) sb_fail(AGENT_STAGE_CAPSET, -1, r);
    r = SB5(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (r < 0) sb_fail(AGENT_STAGE_NO_NEW_PRIVS, -1, r);
    if (p->bpf && p->bpf_len) {
        // Last, so the filter does not have to allow our own set-up calls.
        struct sock_fprog prog = { (unsigned short)(p->bpf_len / sizeof(struct sock_filter)),
                                   (struct sock_filter *)p->bpf };
        r = SB3(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
        if (r < 0) sb_fail(AGENT_STAGE_SECCOMP, -1, r);
    }
    r = sb_exec(p);
    sb_fail(AGENT_STAGE_EXEC, -1, r);
}

/// The command child's stack until its execve (bss of agent-init: only the pages it touches
/// are ever backed), and only one command child ever runs on it.
static char sb_command_stack[64 * 1024] __attribute__((aligned(64)));

static int sb_command_entry(void *arg) { sb_command((const struct agent_sandbox_plan *)arg); }

static void sb_write_all(int fd, const void *buf, size_t len) {
    long r;
    do { r = SB3(SYS_write, fd, buf, len); } while (r == -EINTR);
}

/// Writes `text` to /proc/<pid>/<file> (the pid as seen in this PID namespace).
static long sb_write_proc(long pid, const char *file, const char *text) {
    char path[64];
    const char *pre = "/proc/";
    size_t n = 0;
    for (size_t k = 0; pre[k]; k++) path[n++] = pre[k];
    char digits[12];
    int d = 0;
    unsigned long v = (unsigned long)pid;
    do { digits[d++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (d) path[n++] = digits[--d];
    path[n++] = '/';
    for (size_t k = 0; file[k] && n < sizeof path - 1; k++) path[n++] = file[k];
    path[n] = 0;
    long fd = SB4(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CLOEXEC, 0);
    if (fd < 0) return fd;
    size_t len = sb_strlen(text);
    long w = SB3(SYS_write, fd, text, len);
    SB1(SYS_close, fd);
    return w < 0 ? w : (w == (long)len ? 0 : -EIO);
}

/// The command's maps in its nested user namespace: the same ids 1:1. setgroups is left as
/// the container's (denied in single mode, where the nested namespace inherits "deny").
static void sb_write_nested_maps(long pid, const struct agent_sandbox_plan *p) {
    long r = sb_write_proc(pid, "uid_map", p->nested_uid_map);
    if (r >= 0) r = sb_write_proc(pid, "gid_map", p->nested_gid_map);
    if (r < 0) sb_fail(AGENT_STAGE_NESTED_MAPS, -1, r);
}

void sb_run_init(const struct agent_sandbox_plan *p) {
    long r;
    uint64_t all = ~0ULL;
    SB4(SYS_rt_sigprocmask, SIG_SETMASK, &all, 0, 8);
    for (int s = 1; s < SB_NSIG; s++) {
        struct sb_kernel_sigaction sa = { SIG_DFL, 0, 0, 0 };
        SB4(SYS_rt_sigaction, s, &sa, 0, 8);
    }
    uint64_t watch = 0;
    int fwd[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };
    for (size_t k = 0; k < sizeof fwd / sizeof fwd[0]; k++) watch |= 1ULL << (fwd[k] - 1);
    long sfd = SB4(SYS_signalfd4, -1, &watch, 8, SFD_CLOEXEC);
    if (sfd < 0) sb_fail(AGENT_STAGE_SIGNALS, -1, sfd);

    // Locked mounts. The command starts in a user namespace nested in the container's
    // (CLONE_NEWUSER), as bubblewrap does after pivot_root: the container's mount namespace
    // stays owned by the outer user namespace, so even with CAP_SYS_ADMIN (which the command
    // then holds only in the nested one) and a profile that allows mount(2), it can neither
    // mount, unmount nor remount anything there; a mount namespace it makes itself
    // (unshare -m) copies the tree with every mount MNT_LOCKED and its flags
    // (ro, nosuid, nodev, noexec) locked. The bounding set is full again in the new user
    // namespace; sb_command reduces it afterwards, as before.
    //
    // Who writes the nested maps: only a process with CAP_SETUID/CAP_SETGID in the *parent*
    // user namespace may write ranges (user_namespaces(7)); the command itself could only map
    // its own single id, the agent is two levels up and may not write them at all. So the
    // init, which is in the container's user namespace with its full capabilities, writes
    // them ("0 0 N": the same ids 1:1) while the command waits on the ready pipe.
    //
    // That rules out CLONE_VFORK (the init would be suspended until the exec), so the child
    // shares our memory (CLONE_VM, as before: no copy of the init's memory is made) and runs
    // concurrently with us until its execve. Meanwhile the init only writes the maps and then
    // blocks in read(2) on the exec pipe: it touches no memory the child uses (the child has
    // its own stack; errno is shared, which is why the init reads it only for calls that fail
    // before the ready byte is sent).
    // Dumpable while the maps are written (see below): taking the container's ids in
    // sb_setup_root may have reset the flag (a credential change does, as root's agent does).
    long r2 = SB5(SYS_prctl, PR_SET_DUMPABLE, 1, 0, 0, 0);
    if (r2 < 0) sb_fail(AGENT_STAGE_DUMPABLE, -1, r2);
    r2 = SB2(SYS_pipe2, sb_ready_fds, O_CLOEXEC);
    if (r2 >= 0) r2 = SB2(SYS_pipe2, sb_exec_fds, O_CLOEXEC);
    if (r2 < 0) sb_fail(AGENT_STAGE_FORK, -1, r2);
    // sb_clone_fn (start.c) starts the child on the given stack: the system call alone.
    long cmd = sb_clone_fn(sb_command_entry, sb_command_stack + sizeof sb_command_stack,
                           CLONE_VM | CLONE_NEWUSER | SIGCHLD, (void *)p);
    if (cmd < 0) sb_fail(AGENT_STAGE_NESTED_USERNS, -1, cmd);
    SB1(SYS_close, sb_ready_fds[0]);
    SB1(SYS_close, sb_exec_fds[1]);
    sb_write_nested_maps(cmd, p);
    // Non-dumpable: /proc/1/{exe,fd,mem,environ} of the init (which holds the plan, secrets
    // included, until the command has exec'd) are out of reach for the container: the command
    // and everything it starts live in the nested user namespace, without any capability in
    // the container's, which owns this mm. Not before the maps are
    // written: the command child shares this mm, and a non-dumpable process's
    // /proc/<pid>/uid_map belongs to host root, which the init may not open. Nothing of the
    // container runs yet but the init and that child (blocked on the ready pipe).
    r = SB5(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (r < 0) sb_fail(AGENT_STAGE_DUMPABLE, -1, r);
    char go = 1;
    sb_write_all(sb_ready_fds[1], &go, 1);
    SB1(SYS_close, sb_ready_fds[1]);
    // EOF once the command has exec'd or exited (having reported its failure).
    char b0;
    do { r = SB3(SYS_read, sb_exec_fds[0], &b0, 1); } while (r == -EINTR || r > 0);
    SB1(SYS_close, sb_exec_fds[0]);
    // Nothing of the plan is needed any more (the command has its own image): it goes.
    int keep_alive = p->keep_alive;
    SB2(SYS_munmap, p, p->plan_size);
    p = 0;
    // The command has exec'd (or failed and reported it): our copies of the error pipe
    // and stdio go, so the parent sees EOF once the container's processes are done.
    SB1(SYS_close, 3);
    SB1(SYS_close, 0);
    SB1(SYS_close, 1);
    SB1(SYS_close, 2);

    int status = 0, done = 0;
    while (!done) {
        struct signalfd_siginfo si;
        r = SB3(SYS_read, sfd, &si, sizeof si);
        if (r == -EINTR) continue;
        if (r != (long)sizeof si) SB1(SYS_exit_group, 125);
        if (si.ssi_signo == SIGCHLD) {
            int st;
            long pid;
            while ((pid = SB4(SYS_wait4, -1, &st, WNOHANG, 0)) > 0)
                if (pid == cmd) { status = st; done = 1; }
        } else {
            SB2(SYS_kill, cmd, si.ssi_signo);
        }
    }
    // The command is gone: so is the rest of the container (as Docker does).
    SB2(SYS_kill, -1, SIGKILL);
    while (SB4(SYS_wait4, -1, 0, 0, 0) > 0) {}
    // Everyone else is gone: let the parent reach /proc/1/root (keep-alive readers).
    if (keep_alive) SB5(SYS_prctl, PR_SET_DUMPABLE, 1, 0, 0, 0);
    int32_t raw = status;
    sb_write_all(4, &raw, sizeof raw);
    SB1(SYS_close, 4);
    if (keep_alive) {
        char b;
        do { r = SB3(SYS_read, 5, &b, 1); } while (r == -EINTR || r > 0);
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    SB1(SYS_exit_group, code);
    __builtin_unreachable();
}
