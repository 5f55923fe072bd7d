// Why this shim exists: exposes <archive.h> to Swift as a system-library module.
#include <archive.h>
#include <archive_entry.h>
