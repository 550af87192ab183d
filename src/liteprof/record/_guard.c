/* liteprof.record._core: the SIGBUS guard over the log writer's mappings.
 *
 * Events are stored straight into MAP_SHARED mappings of the log file. If another process
 * truncates the file while it is mapped (a cleanup script, `logrotate copytruncate`), the
 * next store into a page past the new end raises SIGBUS, whose default action kills the
 * program. The writer registers every mapping it makes here (_guard_watch); on a SIGBUS
 * whose faulting address lies in one of them, the handler maps anonymous zero pages over
 * that whole mapping and returns, so the store is retried into memory that no file backs
 * (what is stored there is lost, by design), and counts the fault. The writer reads that
 * count (_guard_faults) at its next block or metadata entry and stops recording with one
 * warning. A SIGBUS anywhere else is handed to whatever handler was installed before
 * (Python's faulthandler, say), or takes its default action as if we were not here.
 *
 * The handler reads a fixed table that only the writer changes, with the GIL held, from
 * the thread that stores; mmap() is a plain system call, safe in a signal handler on the
 * systems this builds on.
 */
#include "_writer.h"

#include <string.h>

#if defined(__unix__) || defined(__APPLE__)
#define LP_HAVE_GUARD 1
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>
#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif
#endif

#define GUARD_MAX 65536

#ifdef LP_HAVE_GUARD
typedef struct {
    volatile uintptr_t start; /* 0: a free entry */
    volatile uintptr_t end;
} Range;

static Range g_ranges[GUARD_MAX];
static volatile sig_atomic_t g_top = 0; /* entries [0, g_top) may be in use */
static Py_ssize_t g_hint = 0;           /* where to look for a free entry first */
static volatile sig_atomic_t g_faults = 0;
static struct sigaction g_prev;
static int g_installed = 0;

/* Hand a SIGBUS that is not ours to the handler that was there before us. */
static void
guard_chain(int sig, siginfo_t *si, void *ctx)
{
    if (g_prev.sa_flags & SA_SIGINFO) {
        if (g_prev.sa_sigaction != NULL) {
            g_prev.sa_sigaction(sig, si, ctx);
            return;
        }
    }
    else if (g_prev.sa_handler == SIG_IGN) {
        if (si == NULL || si->si_code <= 0)
            return; /* sent by kill(): ignored, as before; a fault cannot be ignored */
    }
    else if (g_prev.sa_handler != SIG_DFL) {
        g_prev.sa_handler(sig);
        return;
    }
    /* The default action: put it back. A fault then recurs when this returns and takes
     * that action (the process dies with SIGBUS, core dump included); a sent signal is
     * raised again, to be delivered as soon as the handler returns. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGBUS, &dfl, NULL);
    if (si == NULL || si->si_code <= 0)
        raise(sig);
}

static void
guard_handler(int sig, siginfo_t *si, void *ctx)
{
    if (si != NULL && si->si_code > 0) { /* raised by the kernel for an access */
        uintptr_t addr = (uintptr_t)si->si_addr;
        sig_atomic_t top = g_top;
        for (sig_atomic_t i = 0; i < top; i++) {
            uintptr_t start = g_ranges[i].start, end = g_ranges[i].end;
            if (start != 0 && start <= addr && addr < end) {
                void *p = mmap((void *)start, (size_t)(end - start), PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
                if (p == MAP_FAILED)
                    break;
                g_faults++;
                return;
            }
        }
    }
    guard_chain(sig, si, ctx);
}

static int
guard_install(void)
{
    if (g_installed)
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = guard_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &g_prev) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    g_installed = 1;
    return 0;
}
#endif /* LP_HAVE_GUARD */

/* _guard_watch(buffer) -> int: guard the memory of a mapping (an mmap, or a memoryview of
 * one); returns a handle for _guard_unwatch, or -1 where nothing can be guarded here. */
static PyObject *
guard_watch(PyObject *module, PyObject *obj)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    uintptr_t start = (uintptr_t)view.buf;
    Py_ssize_t len = view.len;
    PyBuffer_Release(&view);
#ifdef LP_HAVE_GUARD
    if (len <= 0 || start == 0)
        return PyLong_FromLong(-1);
    if (guard_install() < 0)
        return NULL;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        page = 4096;
    uintptr_t end = start + (uintptr_t)len;
    end = (end + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    for (Py_ssize_t n = 0; n < GUARD_MAX; n++) {
        Py_ssize_t i = (g_hint + n) % GUARD_MAX;
        if (g_ranges[i].start == 0) {
            /* end first: the handler takes an entry as valid once start is set */
            g_ranges[i].end = end;
            g_ranges[i].start = start;
            if (i >= g_top)
                g_top = (sig_atomic_t)(i + 1);
            g_hint = i + 1;
            return PyLong_FromSsize_t(i);
        }
    }
#else
    (void)start;
    (void)len;
#endif
    return PyLong_FromLong(-1);
}

/* _guard_unwatch(handle): the mapping is being (or has been) unmapped. */
static PyObject *
guard_unwatch(PyObject *module, PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred())
        return NULL;
#ifdef LP_HAVE_GUARD
    if (i >= 0 && i < GUARD_MAX) {
        g_ranges[i].start = 0;
        g_ranges[i].end = 0;
        if (i < g_hint)
            g_hint = i;
    }
#endif
    Py_RETURN_NONE;
}

/* _guard_faults() -> int: how many faults in guarded mappings the handler has repaired. */
static PyObject *
guard_faults(PyObject *module, PyObject *Py_UNUSED(ignored))
{
#ifdef LP_HAVE_GUARD
    return PyLong_FromLong((long)g_faults);
#else
    return PyLong_FromLong(0);
#endif
}

/* _guard_available() -> bool: whether this build can guard mappings at all. */
static PyObject *
guard_available(PyObject *module, PyObject *Py_UNUSED(ignored))
{
#ifdef LP_HAVE_GUARD
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

PyMethodDef lp_guard_methods[] = {
    {"_guard_watch", guard_watch, METH_O,
     "_guard_watch(buffer) -> int: survive SIGBUS in this mapping; a handle, or -1."},
    {"_guard_unwatch", guard_unwatch, METH_O, "_guard_unwatch(handle): stop guarding."},
    {"_guard_faults", guard_faults, METH_NOARGS,
     "_guard_faults() -> int: faults in guarded mappings repaired so far."},
    {"_guard_available", guard_available, METH_NOARGS,
     "_guard_available() -> bool: whether mappings can be guarded on this system."},
    {NULL, NULL, 0, NULL},
};

int
lp_writer_add(PyObject *module)
{
    if (PyModule_AddFunctions(module, lp_guard_methods) < 0)
        return -1;
    return PyModule_AddFunctions(module, lp_fold_methods);
}
