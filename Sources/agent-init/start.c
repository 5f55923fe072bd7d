// agent-init's runtime: it links no libc (not even a static one), so its image is its own
// code and a few pages of data (`size agent-init`), and nothing runs before sb_main.
// Here: the entry point, clone onto a stack of our own, the four functions a C compiler may
// emit calls to, and two stubs for what swiftc links into every executable.
#include "../CAgentSandbox/sys.h"

SB_HIDDEN __attribute__((noreturn)) void sb_main(void);

// _start: the kernel enters with the stack pointer at argc; align it, clear the frame
// pointer and call sb_main (which never returns). argv and the environment are not used.
// sb_clone_fn(fn, stack, flags, arg): clone(flags, stack) where the child pops fn and arg
// (stored at the top of its new stack before the call), runs fn(arg) and exits with it.
#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".globl _start\n"
    ".type _start,@function\n"
    "_start:\n"
    "  xor %ebp, %ebp\n"
    "  and $-16, %rsp\n"
    "  call sb_main\n"
    "  hlt\n"
    ".globl sb_clone_fn\n"
    ".hidden sb_clone_fn\n"
    ".type sb_clone_fn,@function\n"
    "sb_clone_fn:\n"            /* rdi fn, rsi stack, rdx flags, rcx arg */
    "  and $-16, %rsi\n"
    "  sub $16, %rsi\n"
    "  mov %rdi, 0(%rsi)\n"
    "  mov %rcx, 8(%rsi)\n"
    "  mov %rdx, %rdi\n"        /* flags */
    "  xor %edx, %edx\n"        /* parent_tid */
    "  xor %r10d, %r10d\n"      /* child_tid */
    "  xor %r8d, %r8d\n"        /* tls */
    "  mov $56, %eax\n"         /* SYS_clone */
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jnz 1f\n"
    "  pop %rax\n"              /* child: fn */
    "  pop %rdi\n"              /* arg; %rsp is 16-aligned again */
    "  xor %ebp, %ebp\n"
    "  call *%rax\n"
    "  mov %eax, %edi\n"
    "  mov $60, %eax\n"         /* SYS_exit */
    "  syscall\n"
    "  hlt\n"
    "1: ret\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n"
    ".globl _start\n"
    ".type _start,%function\n"
    "_start:\n"
    "  mov x29, #0\n"
    "  mov x30, #0\n"
    "  mov x0, sp\n"
    "  and x0, x0, #-16\n"
    "  mov sp, x0\n"
    "  bl sb_main\n"
    "  brk #0\n"
    ".globl sb_clone_fn\n"
    ".hidden sb_clone_fn\n"
    ".type sb_clone_fn,%function\n"
    "sb_clone_fn:\n"            /* x0 fn, x1 stack, x2 flags, x3 arg */
    "  and x1, x1, #-16\n"
    "  stp x0, x3, [x1, #-16]!\n"
    "  mov x0, x2\n"            /* flags; x1 is the new stack */
    "  mov x2, #0\n"            /* parent_tid */
    "  mov x3, #0\n"            /* tls */
    "  mov x4, #0\n"            /* child_tid */
    "  mov x8, #220\n"          /* SYS_clone */
    "  svc #0\n"
    "  cbnz x0, 1f\n"
    "  ldp x1, x0, [sp], #16\n" /* child: fn, arg */
    "  mov x29, #0\n"
    "  blr x1\n"
    "  mov x8, #93\n"           /* SYS_exit */
    "  svc #0\n"
    "  brk #0\n"
    "1: ret\n");
#else
#error "agent-init: add this architecture's _start and sb_clone_fn"
#endif

// What the compiler may call for struct copies and initialisers. Volatile byte loops, so
// the compiler cannot turn them back into calls to themselves.
void *memset(void *d, int c, size_t n);
void *memset(void *d, int c, size_t n) {
    volatile unsigned char *p = d;
    while (n--) *p++ = (unsigned char)c;
    return d;
}

void *memcpy(void *restrict d, const void *restrict s, size_t n);
void *memcpy(void *restrict d, const void *restrict s, size_t n) {
    volatile unsigned char *p = d;
    const volatile unsigned char *q = s;
    while (n--) *p++ = *q++;
    return d;
}

void *memmove(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n) {
    volatile unsigned char *p = d;
    const volatile unsigned char *q = s;
    if (p < q) { while (n--) *p++ = *q++; }
    else { p += n; q += n; while (n--) *--p = *--q; }
    return d;
}

int memcmp(const void *a, const void *b, size_t n);
int memcmp(const void *a, const void *b, size_t n) {
    const volatile unsigned char *p = a, *q = b;
    for (; n; n--, p++, q++) if (*p != *q) return *p < *q ? -1 : 1;
    return 0;
}

// SwiftPM links every executable with swiftc, which adds swiftrt.o: its constructor (never
// run here: there is no libc start-up code to run constructors) registers the image's Swift
// metadata with the runtime, and it references the backtracer. agent-init has no Swift code
// and must not carry the runtime: both are defined as no-ops so nothing of libswiftCore.a
// is linked.
void swift_addNewDSOImage(const void *image);
void swift_addNewDSOImage(const void *image) { (void)image; }
int _swift_backtrace_isThunkFunction(const char *name);
int _swift_backtrace_isThunkFunction(const char *name) { (void)name; return 0; }
