// Why this shim exists: exposes <seccomp.h> to Swift as a system-library module.
#include <seccomp.h>
