// Why this shim exists: exposes <sys/capability.h> to Swift as a system-library module.
#include <sys/capability.h>
