// The owners child (include/agent_owners.h): a fork-like clone into a new user namespace,
// then raw system calls only until it exits. It never execs and never returns to Swift:
// after a clone without CLONE_VM in a multithreaded process only async-signal-safe work is
// allowed, and the SB* wrappers (syscall(2), no locks) are that.
//
// Every entry is reached component by component from the root descriptor with
// openat(O_PATH | O_DIRECTORY | O_NOFOLLOW) (no component is "." or ".." and none
// contains '/', so no symlink is ever followed, not even one the layer planted), then
// chowned by name with fchownat(AT_SYMLINK_NOFOLLOW), or, when its mode or capability
// must be set again after the chown, through a descriptor of its own (O_NOFOLLOW). The child's capabilities hold over inodes whose ids its namespace
// maps: the snapshot's (the agent's and its subordinate range), never anything else.
#include "sys.h"
#include "include/agent_owners.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#define OW_ROOT 3
#define OW_LIST 4
#define OW_SYNC 5
#define OW_REPORT 6

__attribute__((noreturn)) static void ow_exit(int stage, long err, int64_t index) {
    struct agent_owners_report r = { stage, (int32_t)(err < 0 ? -err : err), index };
    SB3(SYS_write, OW_REPORT, &r, sizeof r);
    SB1(SYS_exit_group, stage == AGENT_OWNERS_STAGE_OK ? 0 : 1);
    __builtin_unreachable();
}

/// Moves the four descriptors the child uses to 3..6 and closes every other one: the clone
/// copied the agent's whole table (other containers' pipes among them, whose EOF must not
/// wait for this child).
static void ow_arrange(int root_fd, int list_fd, int sync_r, int report_w) {
    int want[4] = { root_fd, list_fd, sync_r, report_w };
    int tmp[4];
    int top = 6;
    for (int i = 0; i < 4; i++) if (want[i] > top) top = want[i];
    for (int i = 0; i < 4; i++) {
        if (want[i] < 0) { tmp[i] = -1; continue; }
        long r = SB3(SYS_fcntl, want[i], F_DUPFD_CLOEXEC, top + 1);
        if (r < 0) SB1(SYS_exit_group, 2);
        tmp[i] = (int)r;
    }
    for (int i = 0; i < 4; i++) {
        if (tmp[i] < 0) continue;
        if (SB3(SYS_dup3, tmp[i], OW_ROOT + i, O_CLOEXEC) < 0) SB1(SYS_exit_group, 2);
    }
    SB3(SYS_close_range, OW_REPORT + 1, ~0U, 0);
}

/// A descriptor (O_PATH) of the folder `path[0..<len]` beneath the root, or -errno.
static long ow_folder(const char *path, size_t len) {
    long cur = SB3(SYS_fcntl, OW_ROOT, F_DUPFD_CLOEXEC, 0);
    if (cur < 0) return cur;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && path[j] != '/') j++;
        size_t n = j - i;
        char name[256];
        if (n == 0 || n > 255 || (n == 1 && path[i] == '.') || (n == 2 && path[i] == '.' && path[i + 1] == '.')) {
            SB1(SYS_close, cur);
            return -EINVAL;
        }
        memcpy(name, path + i, n);
        name[n] = 0;
        long fd = SB4(SYS_openat, cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
        SB1(SYS_close, cur);
        if (fd < 0) return fd;
        cur = fd;
        i = j + 1;
    }
    return cur;
}

static void ow_apply(size_t len) {
    const char *base = len ? (const char *)SB6(SYS_mmap, 0, len, PROT_READ, MAP_PRIVATE, OW_LIST, 0) : 0;
    if (len && (long)base < 0 && (long)base > -4096) ow_exit(AGENT_OWNERS_STAGE_SETUP, (long)base, -1);
    // The parent folder of consecutive entries is usually the same (tar order): kept open.
    long parent = -1;
    const char *parent_path = 0;
    size_t parent_len = 0;
    size_t off = 0;
    int64_t index = 0;
    while (off < len) {
        struct agent_owners_record h;
        if (len - off < sizeof h) ow_exit(AGENT_OWNERS_STAGE_LIST, EINVAL, index);
        memcpy(&h, base + off, sizeof h);
        if (h.size < sizeof h || h.size > len - off || h.path_len == 0 ||
            (uint64_t)h.path_len + h.cap_len > h.size - sizeof h) ow_exit(AGENT_OWNERS_STAGE_LIST, EINVAL, index);
        const char *path = base + off + sizeof h;
        const char *cap = path + h.path_len;
        size_t slash = h.path_len;
        while (slash > 0 && path[slash - 1] != '/') slash--;
        size_t dir_len = slash ? slash - 1 : 0;
        size_t name_len = h.path_len - slash;
        char name[256];
        if (name_len == 0 || name_len > 255) ow_exit(AGENT_OWNERS_STAGE_LIST, EINVAL, index);
        memcpy(name, path + slash, name_len);
        name[name_len] = 0;
        if ((name_len == 1 && name[0] == '.') || (name_len == 2 && name[0] == '.' && name[1] == '.'))
            ow_exit(AGENT_OWNERS_STAGE_LIST, EINVAL, index);
        if (parent < 0 || dir_len != parent_len || memcmp(path, parent_path, dir_len) != 0) {
            if (parent >= 0) SB1(SYS_close, parent);
            parent = ow_folder(path, dir_len);
            if (parent < 0) ow_exit(AGENT_OWNERS_STAGE_OPEN, parent, index);
            parent_path = path;
            parent_len = dir_len;
        }
        if ((h.kind & 0xff) == AGENT_OWNERS_KIND_SYMLINK || (!(h.kind & AGENT_OWNERS_FLAG_CHMOD) && h.cap_len == 0)) {
            long r = SB5(SYS_fchownat, parent, name, h.uid, h.gid, AT_SYMLINK_NOFOLLOW);
            if (r < 0) ow_exit(AGENT_OWNERS_STAGE_CHOWN, r, index);
        } else {
            long fd = SB4(SYS_openat, parent, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0);
            if (fd < 0) ow_exit(AGENT_OWNERS_STAGE_OPEN, fd, index);
            long r = SB3(SYS_fchown, fd, h.uid, h.gid);
            if (r < 0) ow_exit(AGENT_OWNERS_STAGE_CHOWN, r, index);
            // chown cleared the set-id bits and the file capability: both come back.
            r = SB2(SYS_fchmod, fd, h.mode & 07777);
            if (r < 0) ow_exit(AGENT_OWNERS_STAGE_CHMOD, r, index);
            if (h.cap_len) {
                r = SB5(SYS_fsetxattr, fd, "security.capability", cap, h.cap_len, 0);
                if (r < 0) ow_exit(AGENT_OWNERS_STAGE_SETCAP, r, index);
            }
            SB1(SYS_close, fd);
        }
        off += h.size;
        index++;
    }
}

struct ow_dirent {
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

/// Deletes everything beneath the root with one folder open at a time: a folder that is
/// not empty is entered, an emptied one left through ".." (never above the root: the
/// depth is counted) and removed on the parent's next pass.
static void ow_remove(void) {
    long cur = SB3(SYS_fcntl, OW_ROOT, F_DUPFD_CLOEXEC, 0);
    if (cur < 0) ow_exit(AGENT_OWNERS_STAGE_REMOVE, cur, -1);
    long depth = 0;
    char buf[4096];
    for (;;) {
        int entered = 0;
        for (;;) {
            long n = SB3(SYS_getdents64, cur, buf, sizeof buf);
            if (n < 0) ow_exit(AGENT_OWNERS_STAGE_REMOVE, n, -1);
            if (n == 0) break;
            for (long at = 0; at < n && !entered;) {
                struct ow_dirent *d = (struct ow_dirent *)(buf + at);
                at += d->reclen;
                const char *nm = d->name;
                if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0))) continue;
                int dir = d->type == 4 /* DT_DIR */;
                if (d->type == 0 /* DT_UNKNOWN */) {
                    struct stat st;
                    if (SB4(SYS_newfstatat, cur, nm, &st, AT_SYMLINK_NOFOLLOW) == 0) dir = S_ISDIR(st.st_mode);
                }
                long r = SB3(SYS_unlinkat, cur, nm, dir ? AT_REMOVEDIR : 0);
                if (r == 0 || r == -ENOENT) continue;
                if (!dir || (r != -ENOTEMPTY && r != -EEXIST)) ow_exit(AGENT_OWNERS_STAGE_REMOVE, r, -1);
                long fd = SB4(SYS_openat, cur, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
                if (fd < 0) ow_exit(AGENT_OWNERS_STAGE_REMOVE, fd, -1);
                SB1(SYS_close, cur);
                cur = fd;
                depth++;
                entered = 1;
            }
            if (entered) break;
        }
        if (entered) continue;
        if (depth == 0) return;
        long up = SB4(SYS_openat, cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (up < 0) ow_exit(AGENT_OWNERS_STAGE_REMOVE, up, -1);
        SB1(SYS_close, cur);
        cur = up;
        depth--;
    }
}

__attribute__((noreturn)) static void ow_child(int op, int root_fd, int list_fd, size_t list_len, int sync_r, int report_w) {
    // Dies with the agent's thread that started it (the parent reaps it before that).
    SB2(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
    ow_arrange(root_fd, list_fd, sync_r, report_w);
    char b;
    long r;
    do r = SB3(SYS_read, OW_SYNC, &b, 1); while (r == -EINTR);
    if (r != 1) ow_exit(AGENT_OWNERS_STAGE_SETUP, r < 0 ? r : EPIPE, -1);
    SB1(SYS_close, OW_SYNC);
    if (op == AGENT_OWNERS_APPLY) ow_apply(list_len);
    else if (op == AGENT_OWNERS_REMOVE) ow_remove();
    else ow_exit(AGENT_OWNERS_STAGE_SETUP, EINVAL, -1);
    ow_exit(AGENT_OWNERS_STAGE_OK, 0, -1);
}

int agent_owners_spawn(int op, int root_fd, int list_fd, size_t list_len, int *sync_w, int *report_r) {
    int sync[2], report[2];
    if (pipe2(sync, O_CLOEXEC) < 0) return -errno;
    if (pipe2(report, O_CLOEXEC) < 0) { int e = errno; close(sync[0]); close(sync[1]); return -e; }
    // Fork-like: no CLONE_VM, a copy of the address space, this thread only.
    long pid = SB5(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) ow_child(op, root_fd, list_fd, list_len, sync[0], report[1]);
    close(sync[0]);
    close(report[1]);
    if (pid < 0) { close(sync[1]); close(report[0]); return (int)pid; }
    *sync_w = sync[1];
    *report_r = report[0];
    return (int)pid;
}
