// Loading a library on first use (see include/agent_lazylibs.h for why).
#include "lazy.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

void *agent_lazy_symbol(void **handle, const char *soname, const char *name) {
    void *h = __atomic_load_n(handle, __ATOMIC_ACQUIRE);
    if (!h) {
        // RTLD_LOCAL: the library's symbols must not interpose on anything else.
        h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "agent: cannot load %s: %s\n", soname, dlerror());
            abort();
        }
        __atomic_store_n(handle, h, __ATOMIC_RELEASE);
    }
    void *symbol = dlsym(h, name);
    if (!symbol) {
        fprintf(stderr, "agent: %s has no function %s: %s\n", soname, name, dlerror());
        abort();
    }
    return symbol;
}
