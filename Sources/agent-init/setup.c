// Builds the container's root inside the child's new mount namespace, then pivots into it.
//
// Order (as bubblewrap and crun do it): ids, hostname, make / rprivate, open every host
// source while the host is still visible (open_tree/fsopen give detached mounts), hide the
// host's /tmp under a private staging tmpfs, build the new root there, apply the operations
// with every target resolved *inside* the new root (openat2 + RESOLVE_IN_ROOT), bring up
// loopback, pivot_root and detach the old root.
#include "../CAgentSandbox/sys.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define STAGING "/tmp"
#define NEWROOT "/tmp/root"
#define FILES "/tmp/files"
#define ROOT_UPPER "/tmp/root-upper"
#define ROOT_WORK "/tmp/root-work"
/// More layers than any image has (Docker's limit is 127); bounds the child's stack array.
#define MAX_LAYERS 128

/// st_dev from a major and minor number, as glibc's makedev (which agent-init cannot link).
static inline uint64_t sb_makedev(uint64_t major, uint64_t minor) {
    return ((major & 0xfffULL) << 8) | ((major & ~0xfffULL) << 32) | (minor & 0xffULL) | ((minor & ~0xffULL) << 12);
}

static int sb_openat2(int dirfd, const char *path, uint64_t resolve) {
    struct open_how how = { .flags = O_PATH | O_CLOEXEC, .mode = 0, .resolve = resolve };
    return (int)SB4(SYS_openat2, dirfd, path, &how, sizeof how);
}

/// Resolves `rel` inside `root` (symlinks cannot lead out), creating missing components
/// one at a time (directories, or an empty file for the last one when `file`).
/// Returns an O_PATH descriptor or -errno.
static int sb_resolve(const struct agent_sandbox_plan *p, int root, const char *rel, uint32_t flags) {
    uint64_t resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    if (flags & AGENT_SANDBOX_F_NOSYMLINKS) resolve |= RESOLVE_NO_SYMLINKS;
    int fd = sb_openat2(root, rel, resolve);
    if (fd != -ENOENT || (flags & AGENT_SANDBOX_F_NOCREATE)) return fd;
    size_t len = sb_strlen(rel);
    if (len + 1 > p->scratch_len) return -ENAMETOOLONG;
    char *buf = p->scratch;
    for (size_t i = 0; i <= len; i++) buf[i] = rel[i];
    int parent = (int)SB3(SYS_fcntl, root, F_DUPFD_CLOEXEC, 0);
    if (parent < 0) return parent;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        int last = buf[i] == 0;
        buf[i] = 0;
        const char *name = buf + start;
        int next = sb_openat2(root, buf, resolve);
        if (next == -ENOENT && name[0]) {
            long r;
            if (last && (flags & AGENT_SANDBOX_F_FILE)) {
                r = SB4(SYS_openat, parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (r >= 0) SB1(SYS_close, r);
            } else {
                r = SB3(SYS_mkdirat, parent, name, 0755);
            }
            if (r < 0 && r != -EEXIST) { SB1(SYS_close, parent); return (int)r; }
            next = sb_openat2(root, buf, resolve);
        }
        SB1(SYS_close, parent);
        if (next < 0) return next;
        parent = next;
        if (!last) buf[i] = '/';
        start = i + 1;
    }
    return parent;
}

static long sb_set_attrs(int fd, uint64_t attrs, int recursive) {
    struct mount_attr attr = { .attr_set = attrs };
    return SB5(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof attr);
}

static long sb_set_readonly(int fd, int recursive) { return sb_set_attrs(fd, MOUNT_ATTR_RDONLY, recursive); }

static long sb_attach(int tree, int target) {
    return SB5(SYS_move_mount, tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

/// Opens a host path for mounting (O_PATH). A trusted path (the host's /usr, the agent's
/// own state) is opened as is. An admitted one is opened without following any symlink,
/// and must still be the inode the parent checked: -ESTALE if it was swapped since.
static long sb_open_host(const char *path, const struct agent_sandbox_identity *id) {
    if (!id->verify) return SB4(SYS_openat, AT_FDCWD, path, O_PATH | O_CLOEXEC, 0);
    long fd = sb_openat2(AT_FDCWD, path, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
    if (fd < 0) return fd;
    struct statx st;
    long r = SB5(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_INO, &st);
    if (r >= 0 && (sb_makedev(st.stx_dev_major, st.stx_dev_minor) != id->dev || st.stx_ino != id->ino)) r = -ESTALE;
    if (r < 0) { SB1(SYS_close, fd); return r; }
    return fd;
}

/// Appends "/proc/self/fd/N" (and a ':' before it unless first) to `buf` at `*len`.
static int sb_append_fd(char *buf, size_t cap, size_t *len, int fd) {
    char one[32];
    sb_fd_path(one, fd);
    size_t n = sb_strlen(one), need = n + (*len ? 1 : 0) + 1;
    if (*len + need > cap) return -ENAMETOOLONG;
    if (*len) buf[(*len)++] = ':';
    for (size_t k = 0; k < n; k++) buf[(*len)++] = one[k];
    buf[*len] = 0;
    return 0;
}

/// Creates an overlay from layers given as opened descriptors: overlayfs is told
/// /proc/self/fd/N, never a host path, so no name (':', ',', '\\', newline) can change
/// the options. `extra` holds flag options (userxattr). Returns the detached mount or -errno.
static long sb_make_overlay(const struct agent_sandbox_plan *p, const struct agent_sandbox_layer *layers,
                            size_t n_layers, const char *const *keys, const char *const *values, size_t n_keys,
                            unsigned attrs) {
    if (n_layers > MAX_LAYERS) return -E2BIG;
    int fds[MAX_LAYERS];
    size_t opened = 0;
    long r = 0;
    char *lower = p->scratch;
    size_t lower_len = 0;
    char upper[32] = {0}, work[32] = {0};
    lower[0] = 0;
    for (; opened < n_layers; opened++) {
        long fd = sb_open_host(layers[opened].path, &layers[opened].id);
        if (fd < 0) { r = fd; break; }
        fds[opened] = (int)fd;
        if (layers[opened].role == AGENT_SANDBOX_LAYER_UPPER) sb_fd_path(upper, (int)fd);
        else if (layers[opened].role == AGENT_SANDBOX_LAYER_WORK) sb_fd_path(work, (int)fd);
        else if ((r = sb_append_fd(lower, p->scratch_len, &lower_len, (int)fd)) < 0) { opened++; break; }
    }
    long fs = r < 0 ? r : SB2(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
    if (fs >= 0) {
        r = SB5(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "lowerdir", lower, 0);
        if (r >= 0 && upper[0]) r = SB5(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "upperdir", upper, 0);
        if (r >= 0 && work[0]) r = SB5(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "workdir", work, 0);
        for (size_t k = 0; r >= 0 && k < n_keys; k++) {
            long c = values[k] ? SB5(SYS_fsconfig, fs, FSCONFIG_SET_STRING, keys[k], values[k], 0)
                               : SB5(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, keys[k], 0, 0);
            // userxattr is an optimisation older kernels lack; everything else must apply.
            if (c < 0 && values[k]) r = c;
        }
        if (r >= 0) r = SB5(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, 0, 0, 0);
        if (r >= 0) r = SB3(SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs);
        SB1(SYS_close, fs);
    } else {
        r = fs;
    }
    // The layers stay referenced by the overlay; the descriptors are no longer needed.
    for (size_t k = 0; k < opened; k++) SB1(SYS_close, fds[k]);
    return r;
}

/// Opens the host sources of binds and overlays as detached mounts while the host is visible.
static void sb_open_sources(const struct agent_sandbox_plan *p) {
    for (size_t i = 0; i < p->n_ops; i++) {
        const struct agent_sandbox_op *op = &p->ops[i];
        p->op_fds[i] = -1;
        if (op->kind == AGENT_SANDBOX_OP_BIND) {
            long src = sb_open_host(op->source, &op->source_id);
            if (src < 0) sb_fail(AGENT_STAGE_OP_SOURCE, (int)i, src);
            long fd = SB3(SYS_open_tree, src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
            SB1(SYS_close, src);
            if (fd < 0) sb_fail(AGENT_STAGE_OP_SOURCE, (int)i, fd);
            // Host trees never bring setuid bits or device nodes in (no_new_privs aside, a
            // group-accessible node under a bind would otherwise stay usable). Device binds
            // (/dev/null, ...) are the exception: they are the device. Recursive, so the
            // submounts of the source get it too; the flags are only ever added.
            uint64_t attrs = MOUNT_ATTR_NOSUID;
            if (!(op->flags & AGENT_SANDBOX_F_DEVICE)) attrs |= MOUNT_ATTR_NODEV;
            if (op->flags & AGENT_SANDBOX_F_RDONLY) attrs |= MOUNT_ATTR_RDONLY;
            long r = sb_set_attrs((int)fd, attrs, 1);
            if (r < 0) sb_fail(AGENT_STAGE_OP_SOURCE, (int)i, r);
            p->op_fds[i] = (int)fd;
        } else if (op->kind == AGENT_SANDBOX_OP_OVERLAY) {
            long m = sb_make_overlay(p, op->layers, op->n_layers, op->keys, op->values, op->n_keys,
                                     MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
            if (m < 0) sb_fail(AGENT_STAGE_OP_SOURCE, (int)i, m);
            p->op_fds[i] = (int)m;
        }
    }
}

/// The host's /dev/null, checked to really be char 1:3 (a planted node must not be used).
static int sb_open_devnull(void) {
    long fd = SB4(SYS_openat, AT_FDCWD, "/dev/null", O_PATH | O_CLOEXEC | O_NOFOLLOW, 0);
    if (fd < 0) sb_fail(AGENT_STAGE_DEVNULL, -1, fd);
    struct statx st;
    long r = SB5(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_TYPE, &st);
    if (r < 0) sb_fail(AGENT_STAGE_DEVNULL, -1, r);
    if (!S_ISCHR(st.stx_mode) || st.stx_rdev_major != 1 || st.stx_rdev_minor != 3)
        sb_fail(AGENT_STAGE_DEVNULL, -1, ENODEV);
    return (int)fd;
}

static void sb_mask(const struct agent_sandbox_plan *p, int root, int devnull, size_t i) {
    const struct agent_sandbox_op *op = &p->ops[i];
    int t = sb_resolve(p, root, op->target, AGENT_SANDBOX_F_NOSYMLINKS | AGENT_SANDBOX_F_NOCREATE);
    if (t == -ENOENT) return;
    if (t < 0) sb_fail(AGENT_STAGE_OP, (int)i, t);
    struct statx st;
    long r = SB5(SYS_statx, t, "", AT_EMPTY_PATH, STATX_TYPE, &st);
    if (r < 0) sb_fail(AGENT_STAGE_OP, (int)i, r);
    if (S_ISDIR(st.stx_mode)) {
        char path[32];
        r = SB5(SYS_mount, "tmpfs", sb_fd_path(path, t), "tmpfs",
                MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=0555");
    } else {
        long tree = SB3(SYS_open_tree, devnull, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        r = tree < 0 ? tree : sb_attach((int)tree, t);
        if (tree >= 0) SB1(SYS_close, tree);
    }
    if (r < 0) sb_fail(AGENT_STAGE_OP, (int)i, r);
    SB1(SYS_close, t);
}

static void sb_write_file(const struct agent_sandbox_plan *p, int files, size_t i, int target) {
    const struct agent_sandbox_op *op = &p->ops[i];
    char name[24];
    // The file's name on the staging tmpfs is the op index: unique, no formatting needed.
    sb_fd_path(name, (int)i);
    const char *base = name + sb_strlen("/proc/self/fd/");
    long fd = SB4(SYS_openat, files, base, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) sb_fail(AGENT_STAGE_OP, (int)i, fd);
    size_t off = 0;
    while (off < op->contents_len) {
        long w = SB3(SYS_write, fd, op->contents + off, op->contents_len - off);
        if (w == -EINTR) continue;
        if (w < 0) sb_fail(AGENT_STAGE_OP, (int)i, w);
        off += (size_t)w;
    }
    long r = SB2(SYS_fchmod, fd, op->mode);
    if (r >= 0) r = SB3(SYS_fchown, fd, op->uid, op->gid);
    if (r < 0) sb_fail(AGENT_STAGE_OP, (int)i, r);
    SB1(SYS_close, fd);
    long tree = SB3(SYS_open_tree, files, base, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0) sb_fail(AGENT_STAGE_OP, (int)i, tree);
    r = sb_set_readonly((int)tree, 0);
    if (r >= 0) r = sb_attach((int)tree, target);
    if (r < 0) sb_fail(AGENT_STAGE_OP, (int)i, r);
    SB1(SYS_close, tree);
}

static void sb_apply(const struct agent_sandbox_plan *p, int root, int files, int devnull, size_t i) {
    const struct agent_sandbox_op *op = &p->ops[i];
    if (op->kind == AGENT_SANDBOX_OP_MASK) { sb_mask(p, root, devnull, i); return; }
    if (op->kind == AGENT_SANDBOX_OP_SYMLINK) {
        // Resolve the parent inside the root, then create the link itself with symlinkat.
        size_t len = sb_strlen(op->target), slash = len;
        while (slash > 0 && op->target[slash - 1] != '/') slash--;
        int parent;
        if (slash == 0) {
            parent = (int)SB3(SYS_fcntl, root, F_DUPFD_CLOEXEC, 0);
        } else {
            if (slash > p->scratch_len / 2) sb_fail(AGENT_STAGE_OP, (int)i, ENAMETOOLONG);
            char *dir = p->scratch + p->scratch_len / 2;
            for (size_t k = 0; k < slash - 1; k++) dir[k] = op->target[k];
            dir[slash - 1] = 0;
            parent = sb_resolve(p, root, dir, op->flags & AGENT_SANDBOX_F_NOSYMLINKS);
        }
        if (parent < 0) sb_fail(AGENT_STAGE_OP, (int)i, parent);
        long r = SB3(SYS_symlinkat, op->data, parent, op->target + slash);
        if (r < 0) sb_fail(AGENT_STAGE_OP, (int)i, r);
        SB1(SYS_close, parent);
        return;
    }
    uint32_t rflags = op->flags & (AGENT_SANDBOX_F_NOSYMLINKS | AGENT_SANDBOX_F_NOCREATE | AGENT_SANDBOX_F_FILE);
    if (op->kind == AGENT_SANDBOX_OP_FILE) rflags |= AGENT_SANDBOX_F_FILE;
    int t = sb_resolve(p, root, op->target, rflags);
    // NOCREATE targets are optional (e.g. /sys in a rootfs without it): missing means skip.
    if (t == -ENOENT && (op->flags & AGENT_SANDBOX_F_NOCREATE)) return;
    if ((t == -ENOENT || t == -EACCES || t == -EPERM || t == -EROFS) && (op->flags & AGENT_SANDBOX_F_OPTIONAL)) return;
    if (t < 0) sb_fail(AGENT_STAGE_OP, (int)i, t);
    long r = 0;
    char path[32];
    switch (op->kind) {
    case AGENT_SANDBOX_OP_MKDIR:
        r = SB2(SYS_fchmod, t, op->mode);  /* O_PATH fds refuse fchmod; use the fd path */
        if (r == -EBADF) r = SB2(SYS_chmod, sb_fd_path(path, t), op->mode);
        break;
    case AGENT_SANDBOX_OP_BIND:
    case AGENT_SANDBOX_OP_OVERLAY:
        r = sb_attach(p->op_fds[i], t);
        if (r >= 0) { SB1(SYS_close, p->op_fds[i]); p->op_fds[i] = -1; }
        break;
    case AGENT_SANDBOX_OP_MOUNT:
        r = SB5(SYS_mount, op->source, sb_fd_path(path, t), op->source, op->mount_flags, op->data);
        break;
    case AGENT_SANDBOX_OP_FILE:
        sb_write_file(p, files, i, t);
        break;
    case AGENT_SANDBOX_OP_READONLY: {
        long tree = SB3(SYS_open_tree, t, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        r = tree;
        if (tree >= 0) {
            r = sb_set_readonly((int)tree, 1);
            if (r >= 0) r = sb_attach((int)tree, t);
            SB1(SYS_close, tree);
        }
        break;
    }
    default:
        r = -EINVAL;
    }
    if (r < 0) sb_fail(AGENT_STAGE_OP, (int)i, r);
    SB1(SYS_close, t);
}

static void sb_loopback(void) {
    long s = SB3(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) sb_fail(AGENT_STAGE_LOOPBACK, -1, s);
    struct ifreq ifr;
    for (size_t k = 0; k < sizeof ifr; k++) ((char *)&ifr)[k] = 0;
    ifr.ifr_name[0] = 'l'; ifr.ifr_name[1] = 'o';
    long r = SB3(SYS_ioctl, s, SIOCGIFFLAGS, &ifr);
    if (r >= 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        r = SB3(SYS_ioctl, s, SIOCSIFFLAGS, &ifr);
    }
    if (r < 0) sb_fail(AGENT_STAGE_LOOPBACK, -1, r);
    SB1(SYS_close, s);
}

/// A pod's holder (plan->pod_holder): its network namespace gets lo up and the fences; the
/// agent holds the namespaces by descriptor from now on, so the holder then just exits.
void sb_setup_pod(const struct agent_sandbox_plan *p) {
    sb_loopback();
    if (p->n_routes) sb_net_routes(p);
}

/// The root overlay over the opened rootfs descriptors (top lower first). Layers the
/// plan marks upper and work (an image build's RUN, whose changes must outlive the
/// container) are used as such; otherwise the upper and work live on the staging tmpfs, so
/// the mount points the root lacks (dev, proc, workspace, ...) and any write go there and
/// nothing is ever written into the folder or the snapshots themselves.
static long sb_root_overlay(const struct agent_sandbox_plan *p, const int *rootsrc, size_t n_root) {
    static const char *const flag_keys[] = { "userxattr" };
    static const char *const flag_values[] = { 0 };
    struct agent_sandbox_layer layers[MAX_LAYERS];
    char fd_paths[MAX_LAYERS][32];
    int host_upper = 0;
    for (size_t k = 0; k < n_root; k++) {
        int32_t role = p->rootfs_dir ? AGENT_SANDBOX_LAYER_LOWER : p->rootfs_layers[k].role;
        if (role == AGENT_SANDBOX_LAYER_UPPER) host_upper = 1;
        layers[k] = (struct agent_sandbox_layer){ .role = role };
        layers[k].path = sb_fd_path(fd_paths[k], rootsrc[k]);
    }
    size_t n = n_root;
    if (!host_upper) {
        long r = SB3(SYS_mkdirat, AT_FDCWD, ROOT_UPPER, 0755);
        if (r >= 0) r = SB3(SYS_mkdirat, AT_FDCWD, ROOT_WORK, 0700);
        if (r < 0) sb_fail(AGENT_STAGE_STAGING, -1, r);
        layers[n++] = (struct agent_sandbox_layer){ .role = AGENT_SANDBOX_LAYER_UPPER, .path = ROOT_UPPER };
        layers[n++] = (struct agent_sandbox_layer){ .role = AGENT_SANDBOX_LAYER_WORK, .path = ROOT_WORK };
    }
    return sb_make_overlay(p, layers, n, flag_keys, flag_values, 1, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
}

/// A change of the effective uid clears PR_SET_PDEATHSIG, and the init's ids change here
/// whenever the agent runs as real root (its uid 0 becomes an unprivileged range's): the
/// setting is made again, then the agent is checked for once more, since it may have died
/// while the setting was off: it holds the only write end of the release pipe (fd 5), so a
/// hang-up there means it is gone.
static void sb_rearm_parent_death(void) {
    SB2(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
    struct pollfd pf = { 5, POLLIN, 0 };
    struct timespec zero = { 0, 0 };
    if (SB5(SYS_ppoll, &pf, 1, &zero, 0, 8) == 1 && (pf.revents & (POLLHUP | POLLERR))) SB1(SYS_exit_group, 125);
}

void sb_setup_root(const struct agent_sandbox_plan *p) {
    long r = SB3(SYS_setresgid, p->init_gid, p->init_gid, p->init_gid);
    if (r >= 0) r = SB3(SYS_setresuid, p->init_uid, p->init_uid, p->init_uid);
    if (r < 0) sb_fail(AGENT_STAGE_INIT_IDS, -1, r);
    sb_rearm_parent_death();
    r = SB2(SYS_sethostname, p->hostname, sb_strlen(p->hostname));
    if (r < 0) sb_fail(AGENT_STAGE_HOSTNAME, -1, r);
    r = SB5(SYS_mount, "none", "/", 0, MS_REC | MS_PRIVATE, 0);
    if (r < 0) sb_fail(AGENT_STAGE_PRIVATE, -1, r);

    sb_open_sources(p);
    int devnull = sb_open_devnull();
    // The rootfs folder is opened now, while its path is visible (it may live under the
    // host's /tmp, which the staging tmpfs hides next).
    // An image's snapshots are opened now for the same reason.
    int rootsrc[MAX_LAYERS];
    size_t n_root = 0;
    if (p->rootfs_dir) {
        long fd = sb_open_host(p->rootfs_dir, &p->rootfs_id);
        if (fd < 0) sb_fail(AGENT_STAGE_ROOTFS, -1, fd);
        rootsrc[n_root++] = (int)fd;
    } else {
        if (p->n_rootfs_layers > MAX_LAYERS - 2) sb_fail(AGENT_STAGE_ROOTFS, -1, -E2BIG);
        for (; n_root < p->n_rootfs_layers; n_root++) {
            long fd = sb_open_host(p->rootfs_layers[n_root].path, &p->rootfs_layers[n_root].id);
            if (fd < 0) sb_fail(AGENT_STAGE_ROOTFS, -1, fd);
            rootsrc[n_root] = (int)fd;
        }
    }

    // The staging tmpfs hides the host's /tmp in this mount namespace only; the new root
    // and the private files (secrets) live on it and vanish with the old root.
    r = SB5(SYS_mount, "tmpfs", STAGING, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700");
    if (r >= 0) r = SB3(SYS_mkdirat, AT_FDCWD, NEWROOT, 0755);
    if (r >= 0) r = SB3(SYS_mkdirat, AT_FDCWD, FILES, 0700);
    if (r < 0) sb_fail(AGENT_STAGE_STAGING, -1, r);
    if (p->rootfs_dir && p->rootfs_bind && p->readonly_root) {
        // Every mount point the plan needs is already in the folder (the agent checked):
        // the folder itself, read-only, as bubblewrap's --ro-bind DIR /. Not recursive, so
        // the host's submounts under it stay out, as with the overlay.
        long b = SB3(SYS_open_tree, rootsrc[0], "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        SB1(SYS_close, rootsrc[0]);
        if (b >= 0) r = sb_set_attrs((int)b, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY, 0);
        if (b < 0 || r < 0) sb_fail(AGENT_STAGE_ROOTFS, -1, b < 0 ? b : r);
        r = SB5(SYS_move_mount, b, "", AT_FDCWD, NEWROOT, MOVE_MOUNT_F_EMPTY_PATH);
        SB1(SYS_close, b);
    } else if (n_root > 0) {
        long ovl = sb_root_overlay(p, rootsrc, n_root);
        for (size_t k = 0; k < n_root; k++) SB1(SYS_close, rootsrc[k]);
        if (ovl < 0) sb_fail(AGENT_STAGE_ROOTFS, -1, ovl);
        r = SB5(SYS_move_mount, ovl, "", AT_FDCWD, NEWROOT, MOVE_MOUNT_F_EMPTY_PATH);
        SB1(SYS_close, ovl);
    } else {
        r = SB5(SYS_mount, "tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
    }
    if (r < 0) sb_fail(AGENT_STAGE_ROOTFS, -1, r);
    int root = (int)SB4(SYS_openat, AT_FDCWD, NEWROOT, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW, 0);
    int files = (int)SB4(SYS_openat, AT_FDCWD, FILES, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW, 0);
    if (root < 0 || files < 0) sb_fail(AGENT_STAGE_STAGING, -1, root < 0 ? root : files);

    for (size_t i = 0; i < p->n_ops; i++) sb_apply(p, root, files, devnull, i);
    if (p->loopback) sb_loopback();
    if (p->n_routes) sb_net_routes(p);

    r = SB1(SYS_fchdir, root);
    if (r >= 0) r = SB2(SYS_pivot_root, ".", ".");
    if (r < 0) sb_fail(AGENT_STAGE_PIVOT_ROOT, -1, r);
    // The old root now sits on top of the new one at "/"; detaching it leaves the new root.
    r = SB2(SYS_umount2, ".", MNT_DETACH);
    if (r < 0) sb_fail(AGENT_STAGE_UMOUNT_OLD, -1, r);
    r = SB1(SYS_chdir, "/");
    if (r < 0) sb_fail(AGENT_STAGE_PIVOT_ROOT, -1, r);
    if (p->readonly_root) {
        struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
        r = SB5(SYS_mount_setattr, AT_FDCWD, "/", 0, &attr, sizeof attr);
        if (r < 0) sb_fail(AGENT_STAGE_REMOUNT_RO, -1, r);
    }
    // Nothing of the host stays open: only stdio and the control pipes (0..5; the sync
    // pipe, 6, was closed after the sync).
    SB3(SYS_close_range, SB_SYNC_FD, ~0U, 0);
}
