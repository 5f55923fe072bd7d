// CAgentSandbox: the agent's side of a container start (spawn.c, parent.c), and the plan
// layout it shares with agent-init (Sources/agent-init), the small static program that sets
// up the container and runs as its PID 1.
//
// Swift (the `Sandbox` module) prepares a flat plan in the parent: every string, array
// and buffer the init needs, in ONE buffer, every pointer stored as an offset from the
// buffer's start (0 = NULL; the plan itself is at offset 0). The parent hands the buffer
// over as a sealed memfd; the clone'd child only arranges its descriptors and execs
// agent-init (no copy of the agent's address space outlives that), which maps the memfd
// MAP_PRIVATE and turns every offset into a pointer in one pass (agent-init/main.c,
// sb_plan_relocate). agent-init then makes raw system calls only.
#ifndef AGENT_SANDBOX_H
#define AGENT_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

/// Version of the plan layout, so Swift and C can never silently disagree.
#define AGENT_SANDBOX_PLAN_VERSION 9

/// Kinds of set-up operations, applied in order inside the new root.
enum agent_sandbox_op_kind {
    /// Create directory `target` (and missing parents), mode `mode`.
    AGENT_SANDBOX_OP_MKDIR = 1,
    /// Create symlink `target` whose contents are `data`.
    AGENT_SANDBOX_OP_SYMLINK = 2,
    /// Bind host path `source` (opened before the host is hidden) at `target`; with
    /// `source_id.verify` the path is opened without following any symlink and must be
    /// the admitted inode.
    AGENT_SANDBOX_OP_BIND = 3,
    /// A new kernel filesystem: type `source`, options `data`, flags `mount_flags`.
    AGENT_SANDBOX_OP_MOUNT = 4,
    /// overlayfs created before the host is hidden: layers in `layers` (each opened, and
    /// checked when `verify`, then named to overlayfs as /proc/self/fd/N, so no host path
    /// ever reaches the mount options), flags in `keys`/`values`.
    AGENT_SANDBOX_OP_OVERLAY = 5,
    /// A file with `contents` on the private staging tmpfs, bound read-only at `target`.
    AGENT_SANDBOX_OP_FILE = 6,
    /// Mask `target` if it exists: the host's /dev/null over a file, an empty ro tmpfs over a dir.
    AGENT_SANDBOX_OP_MASK = 7,
    /// Make existing `target` read-only (bind onto itself, then MOUNT_ATTR_RDONLY).
    AGENT_SANDBOX_OP_READONLY = 8,
};

/// Flags of one operation.
#define AGENT_SANDBOX_F_RDONLY 0x1u      /* mount read-only */
#define AGENT_SANDBOX_F_FILE 0x2u        /* the target is a file, not a directory */
#define AGENT_SANDBOX_F_NOSYMLINKS 0x4u  /* resolve the target without any symlink (kernel fs) */
#define AGENT_SANDBOX_F_NOCREATE 0x8u    /* do not create a missing target */
#define AGENT_SANDBOX_F_DEVICE 0x10u     /* a device bind (/dev/null, ...): keeps device access (no nodev) */
#define AGENT_SANDBOX_F_OPTIONAL 0x20u   /* skip when the target is missing and cannot be made (a root-owned tree) */

/// Which inode a host path must be when the child opens it: the parent admitted it by
/// descriptor and recorded its identity (a job's workspace, rootfs or bind source). The
/// child, after unsharing, opens the same canonical path with RESOLVE_NO_SYMLINKS and
/// refuses anything else (ESTALE), so a path swapped after admission is never mounted.
struct agent_sandbox_identity {
    int32_t verify;   /* 0: a trusted path, opened as is */
    uint64_t dev;     /* st_dev */
    uint64_t ino;     /* st_ino */
};

/// Roles of overlay layers.
enum agent_sandbox_layer_role {
    AGENT_SANDBOX_LAYER_LOWER = 1,
    AGENT_SANDBOX_LAYER_UPPER = 2,
    AGENT_SANDBOX_LAYER_WORK = 3,
};

/// One overlay layer: a host directory, top lower layer first.
struct agent_sandbox_layer {
    int32_t role;
    const char *path;
    struct agent_sandbox_identity id;
};

/// One set-up operation. Targets are relative to the new root ("proc/sys", never "/...").
struct agent_sandbox_op {
    int32_t kind;
    uint32_t flags;
    const char *source;
    const char *target;
    const char *data;
    /// overlay options as fsconfig key/value pairs (value NULL = flag).
    const char *const *keys;
    const char *const *values;
    size_t n_keys;
    const uint8_t *contents;
    size_t contents_len;
    /// bind: the identity `source` must have.
    struct agent_sandbox_identity source_id;
    /// overlay: its layers.
    const struct agent_sandbox_layer *layers;
    size_t n_layers;
    uint32_t mode;
    uint32_t uid;
    uint32_t gid;
    unsigned long mount_flags;
};

/// One route or rule agent-init installs in the container's network namespace (agent-init/net.c)
/// before anything of the job runs: the job's command lives in a nested user namespace, so
/// it holds no capability over this namespace and cannot remove them.
struct agent_sandbox_route {
    int32_t kind;          /* AGENT_SANDBOX_ROUTE_* */
    int32_t family;        /* AF_INET or AF_INET6 */
    uint8_t addr[16];      /* destination, network byte order */
    uint8_t prefix_len;
    uint16_t port;         /* RULE_PORT: the TCP destination port, host byte order */
    uint32_t table;        /* RULE_PORT: the table the rule looks up; GATEWAY_ROUTE: where it goes */
};

enum agent_sandbox_route_kind {
    /// An "unreachable" route for addr/prefix_len in the main table: connect() fails at once.
    AGENT_SANDBOX_ROUTE_UNREACHABLE = 1,
    /// A rule: TCP to addr/prefix_len port `port` looks up table `table` (an allowed host port).
    AGENT_SANDBOX_ROUTE_RULE_PORT = 2,
    /// In table `table`: addr/prefix_len straight out of the stack's interface (`tap0`).
    AGENT_SANDBOX_ROUTE_DIRECT = 3,
};

struct agent_sandbox_rlimit {
    int32_t resource;
    uint64_t soft;
    uint64_t hard;
};

/// Everything the init needs, prepared by the parent. In the memfd every pointer (here and
/// in what it points to) is an offset into the buffer; agent-init relocates them all.
struct agent_sandbox_plan {
    int32_t version;
    uint64_t clone_flags;      /* CLONE_NEW* flags */
    /* Child ends of the control pipes; the parent keeps the other ends. */
    int32_t sync_fd;           /* read: one byte once the id maps are written */
    int32_t error_fd;          /* write, close-on-exec: {stage, op, errno} on failure */
    int32_t status_fd;         /* write: the command's raw wait status */
    int32_t release_fd;        /* read: EOF lets a kept-alive init exit */
    int32_t stdio[3];          /* become 0, 1, 2 */
    /* NULL: a fresh tmpfs root (host rootfs binds come as ops). Else the lower layer of an
       overlay whose upper is on the container's private staging tmpfs: nothing is ever
       written into the folder (mount points it lacks are made in the upper layer). */
    const char *rootfs_dir;
    struct agent_sandbox_identity rootfs_id;
    /* An image: its snapshot folders, top first, as the read-only lower layers of the root
       overlay (upper and work on the staging tmpfs as for rootfs_dir). Used when
       rootfs_dir is NULL and n_rootfs_layers > 0; each is opened before /tmp is hidden. */
    const struct agent_sandbox_layer *rootfs_layers;
    size_t n_rootfs_layers;
    int32_t readonly_root;     /* remount / read-only after set-up */
    /* With rootfs_dir and readonly_root: the root is the folder itself, bound read-only
       (not recursive, nosuid, nodev), not an overlay. The agent sets it only when no step
       of the plan has to create anything on the root (RootBind.swift). */
    int32_t rootfs_bind;
    const char *hostname;
    int32_t loopback;          /* bring up lo (new network namespace) */
    uint32_t init_uid;         /* ids the init takes right after the maps are written */
    uint32_t init_gid;
    const struct agent_sandbox_op *ops;
    size_t n_ops;
    int32_t *op_fds;           /* scratch, n_ops entries */
    /* The command. */
    uint32_t uid;
    uint32_t gid;
    int32_t clear_groups;      /* setgroups(0) (not allowed when setgroups is denied) */
    uint64_t cap_mask;
    uint32_t last_cap;
    const struct agent_sandbox_rlimit *rlimits;
    size_t n_rlimits;
    const uint8_t *bpf;        /* struct sock_filter[], NULL: no filter */
    size_t bpf_len;            /* bytes */
    char *const *argv;
    char *const *envp;
    const char *cwd;
    const char *path_search;   /* PATH for looking up argv[0] without a slash */
    char *scratch;             /* scratch buffer for paths */
    size_t scratch_len;
    int32_t keep_alive;        /* init waits for EOF on release_fd after the command exits */
    /* The command runs in a user namespace nested in the container's, so every mount of the
       container is locked (see init.c). Its id maps, written by the init: the same ids 1:1
       ("0 0 65537\n"), i.e. every id the container's own map has. */
    const char *nested_uid_map;
    const char *nested_gid_map;
    /* Outbound network (agent-init/net.c): routes and rules installed after loopback. */
    const struct agent_sandbox_route *routes;
    size_t n_routes;
    /* A pod (Sources/Sandbox/Pod.swift). join_*_fd >= 0: the parent's descriptors of the
       pod's user and network namespaces, which the child joins (setns) before it makes the
       container's other namespaces (spawn.c); clone_flags then hold no CLONE_NEWUSER or
       CLONE_NEWNET. pod_holder: this "container" only makes the pod's namespaces: after the
       sync agent-init brings lo up, installs the routes and exits 0, building no root. */
    int32_t join_user_fd;
    int32_t join_net_fd;
    int32_t pod_holder;
    /* Bytes of the whole buffer (the memfd's size), checked by agent-init. */
    uint64_t plan_size;
};

/// A failure record the child writes to the error pipe.
struct agent_sandbox_failure {
    int32_t stage;  /* enum agent_sandbox_stage */
    int32_t op;     /* index into ops, or -1 */
    int32_t err;    /* errno */
};

/// Where set-up failed; Swift maps these to names (`pivot_root`, `mount /workspace`, ...).
enum agent_sandbox_stage {
    AGENT_STAGE_SYNC = 1,
    AGENT_STAGE_STDIO,
    AGENT_STAGE_INIT_IDS,
    AGENT_STAGE_HOSTNAME,
    AGENT_STAGE_PRIVATE,
    AGENT_STAGE_OP_SOURCE,
    AGENT_STAGE_STAGING,
    AGENT_STAGE_ROOTFS,
    AGENT_STAGE_OP,
    AGENT_STAGE_DEVNULL,
    AGENT_STAGE_LOOPBACK,
    AGENT_STAGE_PIVOT_ROOT,
    AGENT_STAGE_UMOUNT_OLD,
    AGENT_STAGE_REMOUNT_RO,
    AGENT_STAGE_SIGNALS,
    AGENT_STAGE_FORK,
    AGENT_STAGE_SETSID,
    AGENT_STAGE_RLIMIT,
    AGENT_STAGE_CHDIR,
    AGENT_STAGE_SETGROUPS,
    AGENT_STAGE_SETRESGID,
    AGENT_STAGE_SETRESUID,
    AGENT_STAGE_CAPBSET,
    AGENT_STAGE_CAPSET,
    AGENT_STAGE_NO_NEW_PRIVS,
    AGENT_STAGE_SECCOMP,
    AGENT_STAGE_EXEC,
    AGENT_STAGE_DUMPABLE,
    AGENT_STAGE_NESTED_USERNS,
    AGENT_STAGE_NESTED_MAPS,
    AGENT_STAGE_INIT_EXEC,     /* the child's execveat of agent-init */
    AGENT_STAGE_INIT_PLAN,     /* agent-init: mapping or checking the plan */
    AGENT_STAGE_ROUTES,        /* agent-init: installing a route or rule (op: its index) */
    AGENT_STAGE_JOIN_USERNS,   /* setns into the pod's user namespace */
    AGENT_STAGE_JOIN_NETNS,    /* setns into the pod's network namespace */
    AGENT_STAGE_JOIN_UNSHARE,  /* the container's own namespaces inside the pod's */
    AGENT_STAGE_JOIN_CLONE,    /* the container's init, cloned inside the pod */
};

/// Clones the container's init from the calling thread, with every signal blocked across
/// the clone. `plan` is the header of the flat plan (only its descriptors and flags are read
/// here); `plan_fd` is the sealed memfd holding the whole buffer (agent_sandbox_plan_memfd)
/// and `init_fd` agent-init, opened by the parent (agent_sandbox_open_init): the child moves
/// its descriptors into place and execs agent-init at once. PR_SET_PDEATHSIG ties the init to the calling thread, so call it from a thread
/// that outlives the init (the container's supervisor thread, which reaps it).
/// On success returns 0 and sets `*pid` and `*pidfd`; else returns -errno.
/// `*used_flags` receives the clone flags that worked (CLONE_NEWCGROUP is dropped
/// where the kernel refuses it).
int agent_sandbox_spawn(const struct agent_sandbox_plan *plan, int plan_fd, int init_fd, int *pid, int *pidfd,
                        uint64_t *used_flags);

/// Whether something in a pod accepts TCP connections on 127.0.0.1:`port`: a CLONE_VM |
/// CLONE_VFORK child joins the pod's user and network namespaces (setns on the descriptors),
/// connects without blocking and polls up to `timeout_ms`, and exits; nothing is exec'd and
/// the calling thread waits meanwhile. Returns 1 (connected), 0 (refused, reset or timed
/// out) or -errno (the child could not be made or could not join).
int agent_sandbox_pod_connect(int user_fd, int net_fd, int port, int timeout_ms);

/// Opens /proc/`pid`/ns/`name` (O_RDONLY | O_CLOEXEC). Returns the fd or -errno.
int agent_sandbox_open_ns(int pid, const char *name);

/// pidfd_send_signal, which glibc 2.36 does not wrap.
int agent_sandbox_pidfd_signal(int pidfd, int sig);

/// waitid(P_PIDFD, pidfd, WEXITED): reaps the init. Returns 0 and the raw status
/// (as waitpid would report it) or -errno.
int agent_sandbox_pidfd_reap(int pidfd, int *status);

/// The kernel's highest capability number (/proc/sys/kernel/cap_last_cap), 40 if unknown.
unsigned agent_sandbox_last_cap(void);

/// pipe2(O_CLOEXEC): Swift's Glibc module does not export _GNU_SOURCE functions.
int agent_sandbox_pipe(int fds[2]);

/// socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC): the sync channel, which carries the
/// parent's go byte one way and agent-init's ready byte the other.
int agent_sandbox_socketpair(int fds[2]);

/// eventfd(0, EFD_CLOEXEC), to wake a supervisor thread's poll.
int agent_sandbox_eventfd(void);

/// A thread's CPU affinity, saved by `agent_sandbox_pin_here` (room for 1024 CPUs).
struct agent_sandbox_affinity {
    unsigned long bits[16];
};

/// Pins the calling thread to the CPU it is running on and saves its affinity in `saved`.
/// Returns 1 when pinned (restore with `agent_sandbox_restore_affinity`), 0 when there was
/// nothing to do (one CPU allowed) or the calls failed. A child spawned meanwhile inherits
/// the pin: the id-mapping helpers use it to run on two CPUs at once (IDMapper.swift).
int agent_sandbox_pin_here(struct agent_sandbox_affinity *saved);

/// The calling thread's affinity (0, or -errno): for tests of the pin.
int agent_sandbox_get_affinity(struct agent_sandbox_affinity *out);

/// Gives the calling thread back the affinity `agent_sandbox_pin_here` saved.
void agent_sandbox_restore_affinity(const struct agent_sandbox_affinity *saved);

/// A sealed memfd (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL, close-on-exec)
/// holding `len` bytes of `buf`: the flat plan for agent-init. Returns the fd or -errno.
int agent_sandbox_plan_memfd(const void *buf, size_t len);

/// An empty plan memfd (close-on-exec, sealable), for a child spawned before its plan is
/// built (ContainerReservation): agent-init reads the plan only after the sync byte.
int agent_sandbox_plan_memfd_empty(void);

/// Writes `len` bytes of `buf` into the empty plan memfd `fd` and seals it as
/// agent_sandbox_plan_memfd does. 0 or -errno.
int agent_sandbox_plan_memfd_fill(int fd, const void *buf, size_t len);

/// Opens agent-init at `path` (O_PATH | O_CLOEXEC, no symlink followed) and checks it: a
/// regular file, not writable by group or others, owned by root or by `uid`. Returns the fd,
/// or -errno (-EPERM: the checks failed).
int agent_sandbox_open_init(const char *path, unsigned uid);

/// open(path, O_PATH | O_DIRECTORY | O_CLOEXEC) or -errno.
int agent_sandbox_open_path_dir(const char *path);

#endif
