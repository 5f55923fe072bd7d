// Image file owners in subordinate id-mapping mode (README "Owners"): the agent cannot chown
// to its subordinate ids, a process in a user namespace that maps them can. That process
// is this C code from its clone to its exit (no Swift runs in it): it applies a list of
// owners the unpacker recorded beneath a snapshot's root, or removes a snapshot tree whose
// files belong to subordinate ids. The agent writes the id maps (newuidmap/newgidmap) and
// waits for the report under a deadline (Sources/Sandbox/SubordinateOwners.swift).
#ifndef AGENT_OWNERS_H
#define AGENT_OWNERS_H

#include <stddef.h>
#include <stdint.h>

/// What the child does.
enum {
    /// Apply every record of the list (see `struct agent_owners_record`) beneath the root.
    AGENT_OWNERS_APPLY = 1,
    /// Delete everything beneath the root (the root folder itself stays, the agent owns it).
    AGENT_OWNERS_REMOVE = 2,
};

/// One entry of the list, followed by `path_len` bytes of path (relative to the root,
/// components separated by '/', no "." or "..", no NUL) and `cap_len` bytes of
/// `security.capability`; the next record starts at the next multiple of 4.
struct agent_owners_record {
    uint32_t size;      ///< this record's bytes, header and padding included
    uint32_t uid;       ///< the container's id (the child's namespace maps ids as the steps' does)
    uint32_t gid;
    uint32_t mode;      ///< permission bits re-applied after the chown (it clears set-id bits)
    uint16_t kind;      ///< AGENT_OWNERS_KIND_*, with AGENT_OWNERS_FLAG_CHMOD
    uint16_t cap_len;
    uint32_t path_len;
};

enum {
    /// A file, folder or FIFO. With AGENT_OWNERS_FLAG_CHMOD or a capability: opened
    /// (O_NOFOLLOW), fchown, fchmod, fsetxattr; else fchownat(AT_SYMLINK_NOFOLLOW) alone
    /// (one system call and one inode update: most entries of an image).
    AGENT_OWNERS_KIND_NODE = 1,
    /// A symlink: fchownat(AT_SYMLINK_NOFOLLOW) only.
    AGENT_OWNERS_KIND_SYMLINK = 2,
    /// The mode must be set after the chown: set-id bits (the chown clears them), a folder
    /// whose mode lacks owner rwx (the unpacker added it), a FIFO (made under the umask).
    AGENT_OWNERS_FLAG_CHMOD = 0x100,
};

/// Where the child stopped. `stage` 0: done.
enum {
    AGENT_OWNERS_STAGE_OK = 0,
    AGENT_OWNERS_STAGE_SETUP = 1,    ///< descriptors, the sync byte, mapping the list
    AGENT_OWNERS_STAGE_LIST = 2,     ///< a malformed record (index: the record)
    AGENT_OWNERS_STAGE_OPEN = 3,     ///< reaching the entry
    AGENT_OWNERS_STAGE_CHOWN = 4,
    AGENT_OWNERS_STAGE_CHMOD = 5,
    AGENT_OWNERS_STAGE_SETCAP = 6,
    AGENT_OWNERS_STAGE_REMOVE = 7,
};

/// The child's report, written once to the report pipe.
struct agent_owners_report {
    int32_t stage;
    int32_t err;       ///< errno
    int64_t index;     ///< the record (apply), -1 otherwise
};

/// Starts the child in a new user namespace (no map yet: it waits for one byte on the sync
/// pipe, written after newuidmap/newgidmap). `root_fd`: the tree (O_PATH or O_RDONLY
/// folder); `list_fd`: a memfd of `list_len` bytes of records (apply; -1 for remove).
/// Returns the child's pid, with `*sync_w` (write one byte when the maps are there) and
/// `*report_r` (read the report); or -errno.
int agent_owners_spawn(int op, int root_fd, int list_fd, size_t list_len, int *sync_w, int *report_r);

#endif
