// Trampoline machinery shared by archive.c and xml2.c (not a public header).
#ifndef AGENT_LAZY_INTERNAL_H
#define AGENT_LAZY_INTERNAL_H

/// The address of `name` in `soname`, loading the library into `*handle` the first time.
/// A library or symbol that cannot be found is fatal, with a message naming both: the
/// agent cannot go on without a function it is about to call (the Debian packages
/// libarchive13 and libxml2 provide them).
void *agent_lazy_symbol(void **handle, const char *soname, const char *name);

// Defines `ret name params` (a prototype from the library's own header, so the compiler
// checks that the two agree) as a jump to the real function, resolved once. The pointer is
// published with release/acquire atomics: two threads racing on the first call both
// resolve the same address, which is harmless.
#define AGENT_LAZY(lib, ret, name, params, args)                                            \
    ret name params {                                                                       \
        static ret (*lazy_real_) params;                                                    \
        ret (*lazy_f_) params = __atomic_load_n(&lazy_real_, __ATOMIC_ACQUIRE);             \
        if (!lazy_f_) {                                                                     \
            lazy_f_ = (ret (*) params)agent_lazy_symbol(&lib##_handle, lib##_soname, #name);\
            __atomic_store_n(&lazy_real_, lazy_f_, __ATOMIC_RELEASE);                       \
        }                                                                                   \
        return lazy_f_ args;                                                                \
    }

// The same for functions returning void (C does not allow returning a void call there).
#define AGENT_LAZY_VOID(lib, name, params, args)                                            \
    void name params {                                                                      \
        static void (*lazy_real_) params;                                                   \
        void (*lazy_f_) params = __atomic_load_n(&lazy_real_, __ATOMIC_ACQUIRE);            \
        if (!lazy_f_) {                                                                     \
            lazy_f_ = (void (*) params)agent_lazy_symbol(&lib##_handle, lib##_soname, #name);\
            __atomic_store_n(&lazy_real_, lazy_f_, __ATOMIC_RELEASE);                       \
        }                                                                                   \
        lazy_f_ args;                                                                       \
    }

#endif
