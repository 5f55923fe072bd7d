// CAgentSys: the few Linux calls Swift's Glibc module does not export (variadic `prctl`,
// `renameat2` and `pipe2` behind _GNU_SOURCE). Each is a one-line wrapper; nothing else belongs here.
#ifndef AGENT_SYS_H
#define AGENT_SYS_H

/// renameat2(2) flags, as in <linux/fs.h>.
#define AGENT_RENAME_NOREPLACE (1u << 0)
#define AGENT_RENAME_EXCHANGE (1u << 1)

/// O_PATH (glibc defines it only with _GNU_SOURCE, which Swift's Glibc module lacks).
extern const int agent_o_path;

/// renameat2(2) through the raw system call (no glibc version dependency).
/// Returns 0, or -1 with errno set.
int agent_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);

/// pipe2(2) with O_CLOEXEC (and O_NONBLOCK on both ends when `nonblock` is non-zero), in
/// one step: no window in which a fork+exec elsewhere in the process inherits the pipe.
/// Returns 0, or -1 with errno set.
int agent_pipe_cloexec(int fds[2], int nonblock);

/// Makes the calling process non-dumpable (PR_SET_DUMPABLE 0: no core file, and its /proc
/// files owned by root so other processes of the same user cannot read its memory or
/// environment) and sets RLIMIT_CORE to 0 (soft and hard). Returns 0, or -1 with errno set
/// from the first call that failed.
int agent_disable_core_dumps(void);

/// PR_GET_DUMPABLE: 1 if the process is dumpable, 0 if not, -1 with errno on error.
int agent_get_dumpable(void);

/// PR_CAPBSET_READ: 1 if capability `cap` is in the bounding set, 0 if not, -1 with errno
/// (EINVAL: the running kernel has no capability `cap`).
int agent_capbset_read(unsigned long cap);

/// memrchr(3) (a GNU extension): the last `c` in the first `n` bytes of `s`, or NULL.
const void *agent_memrchr(const void *s, int c, unsigned long n);

#endif
