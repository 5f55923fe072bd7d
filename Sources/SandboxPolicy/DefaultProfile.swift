// The project's default seccomp profile, embedded so a copied `agent` binary needs no
// files next to it. The text must equal `policies/seccomp-default.json` byte for byte
// (a unit test checks it); edit the JSON file and paste it here, keeping the blank line
// before the closing delimiter (it stands for the file's final newline).

/// The project's default seccomp profile and the optional rules the agent policy can add.
public enum DefaultProfile {
    /// The text of `policies/seccomp-default.json`.
    public static let text = #"""
{
  "comment": "The agent's default seccomp profile (Docker's format). Deny by default with EPERM; allow ordinary system calls; no namespaces, mounts, keys, bpf, ptrace, module loading, netlink, raw or packet sockets. Native system call ABI only: 32-bit compat calls (x86 int 0x80, x32, arm on aarch64) are killed with SIGSYS, which removes the compat attack surface and two thirds of the filter; point the policy's seccompProfile at a profile with subArchitectures (e.g. Docker's) to run 32-bit programs. The agent policy can add netlink (allowNetlink) and raw sockets (allowRawSockets); see policies/README.md.",
  "defaultAction": "SCMP_ACT_ERRNO",
  "defaultErrnoRet": 1,
  "archMap": [
    {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": []},
    {"architecture": "SCMP_ARCH_PPC64LE", "subArchitectures": []},
    {"architecture": "SCMP_ARCH_S390X", "subArchitectures": []},
    {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": []}
  ],
  "syscalls": [
    {
      "comment": "Ordinary system calls: files and descriptors.",
      "names": [
        "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
        "preadv2", "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range",
        "lseek", "_llseek", "dup", "dup2", "dup3", "fcntl", "fcntl64", "ioctl", "flock",
        "fsync", "fdatasync", "sync", "syncfs", "sync_file_range", "sync_file_range2",
        "arm_sync_file_range", "truncate", "truncate64", "ftruncate", "ftruncate64",
        "fallocate", "fadvise64", "fadvise64_64", "arm_fadvise64_64", "readahead", "sendfile",
        "sendfile64", "splice", "tee", "vmsplice", "copy_file_range", "pipe", "pipe2",
        "cachestat"
      ],
      "action": "SCMP_ACT_ALLOW"
    },
    {
      "comment": "Ordinary system calls: file metadata and directories.",
      "names": [
        "stat", "stat64", "fstat", "fstat64", "lstat", "lstat64", "newfstatat", "fstatat64",
        "statx", "statfs", "statfs64", "fstatfs", "fstatfs64", "access", "faccessat",
        "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd", "chdir",
        "fchdir", "mkdir", "mkdirat", "rmdir", "rename", "renameat", "renameat2", "link",
        "linkat", "unlink", "unlinkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat",
        "fchmodat2", "chown", "chown32", "fchown", "fchown32", "lchown", "lchown32", "fchownat",
        "utime", "utimes", "futimesat", "utimensat", "utimensat_time64", "umask", "mknod",
        "mknodat", "name_to_handle_at", "getxattr", "lgetxattr", "fgetxattr", "setxattr",
        "lsetxattr", "fsetxattr", "listxattr", "llistxattr", "flistxattr", "removexattr",
        "lremovexattr", "fremovexattr", "inotify_init", "inotify_init1", "inotify_add_watch",
        "inotify_rm_watch"
      ],
      "action": "SCMP_ACT_ALLOW"
    },
    {
      "comment": "Ordinary system calls: memory.",
      "names": [
        "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
        "mlock", "mlock2", "munlock", "mlockall", "munlockall", "membarrier", "memfd_create",
        "pkey_alloc", "pkey_free", "pkey_mprotect", "get_mempolicy", "map_shadow_stack"
      ],
      "action": "SCMP_ACT_ALLOW"
    },
    {
      "comment": "Ordinary system calls: processes, threads and identity.",
      "names": [
        "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
        "waitpid", "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid",
        "setsid", "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid",
        "getegid32", "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups",
        "getgroups32", "setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32",
        "setregid", "setregid32", "setresuid", "setresuid32", "setresgid", "setresgid32",
        "setgroups", "setgroups32", "setfsuid", "setfsuid32", "setfsgid", "setfsgid32",
        "capget", "capset", "prctl", "arch_prctl", "set_thread_area", "get_thread_area",
        "set_tls", "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "futex",
        "futex_time64", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue",
        "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam",
        "sched_setparam", "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
        "sched_get_priority_min", "sched_rr_get_interval", "sched_rr_get_interval_time64",
        "sched_getattr", "sched_setattr", "getpriority", "setpriority", "nice", "ioprio_get",
        "ioprio_set", "getrlimit", "ugetrlimit", "setrlimit", "prlimit64", "getrusage", "times",
        "sysinfo", "uname", "getcpu", "getrandom", "seccomp", "landlock_create_ruleset",
        "landlock_add_rule", "landlock_restrict_self", "pidfd_open", "pidfd_send_signal",
        "breakpoint", "cacheflush", "riscv_flush_icache"
      ],
      "action": "SCMP_ACT_ALLOW"
    },
    {
      "comment": "Ordinary system calls: signals and timers.",
      "names": [
        "kill", "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
        "rt_sigpending", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
        "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "signal", "sigaction",
        "sigprocmask", "sigpending", "sigreturn", "sigsuspend", "restart_syscall", "pause",
        "alarm", "getitimer", "setitimer", "timer_create", "timer_delete", "timer_settime",
        "timer_settime64", "timer_gettime", "timer_gettime64", "timer_getoverrun",
        "timerfd_create", "timerfd_settime", "timerfd_settime64", "timerfd_gettime",
        "timerfd_gettime64", "nanosleep", "clock_nanosleep", "clock_nanosleep_time64",
        "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64",
        "gettimeofday", "time", "adjtimex", "clock_adjtime", "clock_adjtime64"
      ],
      "action": "SCMP_ACT_ALLOW"
    },
    {
      "comment": "Ordinary system calls: waiting and inter-process communication.",
      "names": [
        "poll", "ppoll", "ppoll_time64", "select", "_newselect", "pselect6", "pselect6_time64",
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
        "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4", "io_setup",
        "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
        "io_pgetevents_time64", "shmget", "shmat", "shmdt", "shmctl", "semget", "semop",
        "semtimedop", "semtimedop_time64", "semctl", "msgget", "msgsnd", "msgrcv", "msgctl",
        "ipc", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive",
        "mq_timedreceive_time64", "mq_notify", "mq_getsetattr"
      ],
      "action": "SCMP_ACT_ALLOW"
    },
    {
      "comment": "Ordinary system calls: sockets (creating one is restricted below).",
      "names": [
        "bind", "connect", "listen", "accept", "accept4", "getsockname", "getpeername",
        "sendto", "recvfrom", "send", "recv", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
        "recvmmsg_time64", "shutdown", "setsockopt", "getsockopt"
      ],
      "action": "SCMP_ACT_ALLOW"
    },
    {
      "comment": "clone without namespace flags (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET = 0x7e020000): the flags are argument 0 everywhere except s390.",
      "names": ["clone"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
      ],
      "excludes": {
        "arches": ["s390", "s390x"]
      }
    },
    {
      "comment": "clone without namespace flags on s390, where the flags are argument 1.",
      "names": ["clone"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 1, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
      ],
      "includes": {
        "arches": ["s390", "s390x"]
      }
    },
    {
      "comment": "clone3 passes its flags in memory, where seccomp cannot look: ENOSYS makes glibc fall back to clone, which is checked above.",
      "names": ["clone3"],
      "action": "SCMP_ACT_ERRNO",
      "errnoRet": 38
    },
    {
      "comment": "personality: only the plain Linux personalities and the query (0xffffffff); no ADDR_NO_RANDOMIZE or other flags.",
      "names": ["personality"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}
      ]
    },
    {
      "names": ["personality"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}
      ]
    },
    {
      "names": ["personality"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}
      ]
    },
    {
      "comment": "chroot only when the container keeps CAP_SYS_CHROOT (the kernel would refuse it anyway).",
      "names": ["chroot"],
      "action": "SCMP_ACT_ALLOW",
      "includes": {
        "caps": ["CAP_SYS_CHROOT"]
      }
    },
    {
      "names": ["socket"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 15, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}
      ],
      "comment": "socket(AF_UNIX, SOCK_STREAM); the type is masked with 0xf because SOCK_NONBLOCK and SOCK_CLOEXEC share the argument."
    },
    {
      "names": ["socket"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 15, "valueTwo": 2, "op": "SCMP_CMP_MASKED_EQ"}
      ],
      "comment": "socket(AF_UNIX, SOCK_DGRAM)."
    },
    {
      "names": ["socket"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 15, "valueTwo": 5, "op": "SCMP_CMP_MASKED_EQ"}
      ],
      "comment": "socket(AF_UNIX, SOCK_SEQPACKET)."
    },
    {
      "names": ["socket"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 15, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}
      ],
      "comment": "socket(AF_INET, SOCK_STREAM)."
    },
    {
      "names": ["socket"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 15, "valueTwo": 2, "op": "SCMP_CMP_MASKED_EQ"}
      ],
      "comment": "socket(AF_INET, SOCK_DGRAM)."
    },
    {
      "names": ["socket"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 15, "valueTwo": 5, "op": "SCMP_CMP_MASKED_EQ"}
      ],
      "comment": "socket(AF_INET, SOCK_SEQPACKET)."
    },
    {
      "names": ["socket"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 0, "value": 10, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 15, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}
      ],
      "comment": "socket(AF_INET6, SOCK_STREAM)."
    },
    {
      "names": ["socket"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 0, "value": 10, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 15, "valueTwo": 2, "op": "SCMP_CMP_MASKED_EQ"}
      ],
      "comment": "socket(AF_INET6, SOCK_DGRAM)."
    },
    {
      "names": ["socket"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 0, "value": 10, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 15, "valueTwo": 5, "op": "SCMP_CMP_MASKED_EQ"}
      ],
      "comment": "socket(AF_INET6, SOCK_SEQPACKET)."
    },
    {
      "comment": "socketpair for AF_UNIX only.",
      "names": ["socketpair"],
      "action": "SCMP_ACT_ALLOW",
      "args": [
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}
      ]
    },
    {
      "comment": "Blocked on purpose (the default action already refuses them; listed so the intent is reviewable): mounts and namespaces, keys, bpf, perf, ptrace and cross-process memory, kexec and modules, reboot and swap, file handles, userfaultfd, the clock, accounting and quotas, raw I/O ports, the kernel log, io_uring, x86 socketcall (its arguments cannot be checked), hostname changes and NUMA placement.",
      "names": [
        "mount", "umount", "umount2", "pivot_root", "unshare", "setns", "fsopen", "fsconfig",
        "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "keyctl", "add_key",
        "request_key", "bpf", "perf_event_open", "ptrace", "process_vm_readv",
        "process_vm_writev", "process_madvise", "kcmp", "pidfd_getfd", "kexec_load",
        "kexec_file_load", "init_module", "finit_module", "delete_module", "create_module",
        "reboot", "swapon", "swapoff", "open_by_handle_at", "userfaultfd", "settimeofday",
        "clock_settime", "clock_settime64", "stime", "acct", "quotactl", "quotactl_fd", "iopl",
        "ioperm", "modify_ldt", "vm86", "vm86old", "syslog", "uselib", "lookup_dcookie",
        "nfsservctl", "_sysctl", "sysfs", "ustat", "vhangup", "io_uring_setup",
        "io_uring_enter", "io_uring_register", "fanotify_init", "socketcall", "sethostname",
        "setdomainname", "mbind", "set_mempolicy", "migrate_pages", "move_pages",
        "memfd_secret"
      ],
      "action": "SCMP_ACT_ERRNO",
      "errnoRet": 1
    }
  ]
}

"""#

    /// Rules `allowNetlink` adds: netlink sockets of any kind (`ip`, `ss`, glibc's
    /// interface enumeration). Off by default: netlink is a large kernel attack surface.
    public static let netlinkRules: [SeccompProfile.Rule] = [
        SeccompProfile.Rule(
            names: ["socket"], action: .allow,
            args: [.init(index: 0, value: 16, op: .equal)],  // AF_NETLINK
            comment: "allowNetlink: socket(AF_NETLINK, ...)."),
    ]

    /// Rules `allowRawSockets` adds: raw IPv4/IPv6 sockets and packet sockets (`ping`
    /// without ICMP datagram sockets, `tcpdump`). Off by default: packet sockets in user
    /// namespaces have been the way in for several kernel exploits.
    public static let rawSocketRules: [SeccompProfile.Rule] = [
        SeccompProfile.Rule(
            names: ["socket"], action: .allow,
            args: [.init(index: 0, value: 2, op: .equal), .init(index: 1, value: 15, valueTwo: 3, op: .maskedEqual)],
            comment: "allowRawSockets: socket(AF_INET, SOCK_RAW)."),
        SeccompProfile.Rule(
            names: ["socket"], action: .allow,
            args: [.init(index: 0, value: 10, op: .equal), .init(index: 1, value: 15, valueTwo: 3, op: .maskedEqual)],
            comment: "allowRawSockets: socket(AF_INET6, SOCK_RAW)."),
        SeccompProfile.Rule(
            names: ["socket"], action: .allow,
            args: [.init(index: 0, value: 17, op: .equal)],  // AF_PACKET
            comment: "allowRawSockets: socket(AF_PACKET, ...)."),
    ]
}
