// agent-init: the container's set-up and PID 1, a small static program of its own.
//
// The agent clones a child that execs this file at once (spawn.c), so no process of the
// container maps the agent's binary or heap. It arrives with its descriptors in place
// (0-2 stdio, 3 error, 4 status, 5 release, 6 sync: a socket, 7 the plan: a memfd), its
// capabilities in the ambient set and every signal blocked. It makes itself dumpable and
// says so on the sync socket, waits for the sync byte (the id maps are written and the plan
// memfd filled and sealed), maps the plan and turns its offsets into pointers, builds the
// root (setup.c) and runs the init loop (init.c). Raw system calls only: agent-init links no libc
// (start.c has its entry point, clone and the memset/memcpy the compiler may call).
#include "../CAgentSandbox/sys.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

SB_HIDDEN int sb_error_fd = 3;

SB_HIDDEN void sb_fail(int stage, int op, long err) {
    struct agent_sandbox_failure f = { stage, op, (int32_t)(err < 0 ? -err : err) };
    if (sb_error_fd >= 0) SB3(SYS_write, sb_error_fd, &f, sizeof f);
    SB1(SYS_exit_group, 125);
    __builtin_unreachable();
}

/// The buffer being relocated, and whether any offset fell outside it.
struct sb_reloc {
    uintptr_t base;
    size_t size;
    int bad;
};

/// The address of `len` bytes at offset `off` (0 stays NULL), or NULL and `bad` if they do
/// not lie inside the buffer.
static uintptr_t sb_at(struct sb_reloc *r, uintptr_t off, size_t len) {
    if (!off) return 0;
    if (off >= r->size || len > r->size - off) { r->bad = 1; return 0; }
    return r->base + off;
}

/// One pointer field `f` to `n` elements of its type.
#define SB_RELOC(r, f, n) ((f) = (__typeof__(f))sb_at((r), (uintptr_t)(f), (size_t)(n) * sizeof *(f)))
/// A string (the buffer ends with a NUL, so every string ends inside it).
#define SB_RELOC_STR(r, f) SB_RELOC(r, f, 1)

/// A NULL-terminated string array (argv, envp): the array, then each string.
#define SB_RELOC_STRV(r, f) sb_reloc_strv((r), (uintptr_t *)&(f))
static void sb_reloc_strv(struct sb_reloc *r, uintptr_t *field) {
    uintptr_t *a = (uintptr_t *)sb_at(r, *field, sizeof(uintptr_t));
    *field = (uintptr_t)a;
    if (!a) return;
    for (size_t k = 0;; k++) {
        if ((uintptr_t)(a + k) + sizeof *a > r->base + r->size) { r->bad = 1; return; }
        if (!a[k]) return;
        a[k] = sb_at(r, a[k], 1);
    }
}

/// An array of overlay layers (an op's, or the plan's rootfs layers): the array, then each path.
#define SB_RELOC_LAYERS(r, f, n) sb_reloc_layers((r), (const struct agent_sandbox_layer **)&(f), (n))
static void sb_reloc_layers(struct sb_reloc *r, const struct agent_sandbox_layer **field, size_t n) {
    SB_RELOC(r, *field, n);
    struct agent_sandbox_layer *l = (struct agent_sandbox_layer *)*field;
    for (size_t k = 0; l && k < n; k++) SB_RELOC_STR(r, l[k].path);
}

/// Turns every offset of the plan at `base` into a pointer, in one pass. A new pointer field
/// of the plan is one line here (e.g. `SB_RELOC_LAYERS(&r, p->rootfs_layers, p->n_rootfs_layers);`).
static int sb_plan_relocate(struct agent_sandbox_plan *p, size_t size) {
    struct sb_reloc r = { (uintptr_t)p, size, 0 };
    SB_RELOC_STR(&r, p->rootfs_dir);
    SB_RELOC_LAYERS(&r, p->rootfs_layers, p->n_rootfs_layers);
    SB_RELOC_STR(&r, p->hostname);
    SB_RELOC(&r, p->ops, p->n_ops);
    SB_RELOC(&r, p->op_fds, p->n_ops);
    SB_RELOC(&r, p->rlimits, p->n_rlimits);
    SB_RELOC(&r, p->bpf, p->bpf_len);
    SB_RELOC_STRV(&r, p->argv);
    SB_RELOC_STRV(&r, p->envp);
    SB_RELOC_STR(&r, p->cwd);
    SB_RELOC_STR(&r, p->path_search);
    SB_RELOC(&r, p->scratch, p->scratch_len);
    SB_RELOC_STR(&r, p->nested_uid_map);
    SB_RELOC_STR(&r, p->nested_gid_map);
    SB_RELOC(&r, p->routes, p->n_routes);
    struct agent_sandbox_op *ops = (struct agent_sandbox_op *)p->ops;
    for (size_t i = 0; ops && i < p->n_ops; i++) {
        struct agent_sandbox_op *op = &ops[i];
        SB_RELOC_STR(&r, op->source);
        SB_RELOC_STR(&r, op->target);
        SB_RELOC_STR(&r, op->data);
        SB_RELOC(&r, op->keys, op->n_keys);
        SB_RELOC(&r, op->values, op->n_keys);
        for (size_t k = 0; op->keys && k < op->n_keys; k++) SB_RELOC_STR(&r, ((const char **)op->keys)[k]);
        for (size_t k = 0; op->values && k < op->n_keys; k++) SB_RELOC_STR(&r, ((const char **)op->values)[k]);
        SB_RELOC(&r, op->contents, op->contents_len);
        SB_RELOC_LAYERS(&r, op->layers, op->n_layers);
    }
    if (!p->argv || !p->argv[0] || !p->envp || !p->cwd || !p->path_search || !p->scratch || !p->hostname ||
        !p->nested_uid_map || !p->nested_gid_map || (p->n_ops && (!p->ops || !p->op_fds)))
        r.bad = 1;
    return r.bad ? -EINVAL : 0;
}

/// Maps the plan memfd (fd 7) MAP_PRIVATE (op_fds and scratch are written), checks and
/// relocates it, and closes the fd.
static struct agent_sandbox_plan *sb_map_plan(void) {
    // Sealed against writes and size changes before the sync byte, so what we map is
    // what the parent checked and nobody can change it under us.
    long seals = SB2(SYS_fcntl, SB_PLAN_FD, F_GET_SEALS);
    long need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
    if (seals < 0 || (seals & need) != need) sb_fail(AGENT_STAGE_INIT_PLAN, -1, seals < 0 ? seals : -EPERM);
    long r = SB3(SYS_lseek, SB_PLAN_FD, 0, SEEK_END);
    if (r < 0) sb_fail(AGENT_STAGE_INIT_PLAN, -1, r);
    size_t size = (size_t)r;
    if (size < sizeof(struct agent_sandbox_plan) + 1) sb_fail(AGENT_STAGE_INIT_PLAN, -1, EINVAL);
    long m = SB6(SYS_mmap, 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, SB_PLAN_FD, 0);
    if (m < 0 && m > -4096) sb_fail(AGENT_STAGE_INIT_PLAN, -1, m);
    SB1(SYS_close, SB_PLAN_FD);
    struct agent_sandbox_plan *p = (struct agent_sandbox_plan *)m;
    const char *bytes = (const char *)m;
    if (p->version != AGENT_SANDBOX_PLAN_VERSION || p->plan_size != size || bytes[size - 1] != 0)
        sb_fail(AGENT_STAGE_INIT_PLAN, -1, EINVAL);
    r = sb_plan_relocate(p, size);
    if (r < 0) sb_fail(AGENT_STAGE_INIT_PLAN, -1, r);
    return p;
}

/// The entry point (start.c's _start calls it).
SB_HIDDEN __attribute__((noreturn)) void sb_main(void);
void sb_main(void) {
    sb_error_fd = 3;
    // The control pipes stay ours: nothing the init starts (the command) inherits them.
    for (int fd = 3; fd <= SB_SYNC_FD; fd++) {
        long r = SB3(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
        if (r < 0) sb_fail(AGENT_STAGE_STDIO, -1, r);
    }
    // The ambient and inheritable sets only carried our capabilities across the exec.
    SB5(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    long r = SB2(SYS_capget, &hdr, data);
    if (r >= 0) {
        data[0].inheritable = data[1].inheritable = 0;
        r = SB2(SYS_capset, &hdr, data);
    }
    if (r < 0) sb_fail(AGENT_STAGE_INIT_EXEC, -1, r);
    SB2(SYS_prctl, PR_SET_NAME, "init");
    // Dumpable until the maps are written, whatever the exec left: the parent (and
    // newuidmap) must open our /proc/PID/{setgroups,uid_map,gid_map}, which a non-dumpable
    // process's root owns. Under load the exec sometimes came out non-dumpable (the
    // parent's open then failed with EACCES). sb_run_init clears it again before the
    // command runs. Then the ready byte on the sync socket, which the parent waits for
    // before it writes the maps (Launcher.awaitReady); if it is gone, the read below sees EOF.
    long d = SB5(SYS_prctl, PR_SET_DUMPABLE, 1, 0, 0, 0);
    if (d < 0) sb_fail(AGENT_STAGE_DUMPABLE, -1, d);
    char ready = 1;
    SB6(SYS_sendto, SB_SYNC_FD, &ready, 1, MSG_NOSIGNAL, 0, 0);
    // Wait until the parent has written uid_map/gid_map (EOF: it gave up or died).
    char b = 0;
    do { r = SB3(SYS_read, SB_SYNC_FD, &b, 1); } while (r == -EINTR);
    if (r != 1) SB1(SYS_exit_group, 125);
    SB1(SYS_close, SB_SYNC_FD);
    // The plan is read only now: a reserved start (ContainerReservation) fills and seals
    // the memfd while we wait.
    struct agent_sandbox_plan *p = sb_map_plan();
    if (p->pod_holder) {
        sb_setup_pod(p);
        SB1(SYS_exit_group, 0);
    }
    sb_setup_root(p);
    sb_run_init(p);
}

