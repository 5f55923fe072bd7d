// Why this shim exists: exposes <seccomp.h> to Swift as a system-library module. It links
// nothing itself: SandboxPolicy links libseccomp (statically in release builds, see Package.swift).
#include <seccomp.h>
