/* liteprof.record._core: the compiled recorder, a drop-in twin of _pyrecorder.py.
 *
 * Same names, same semantics, same log bytes (docs/FORMAT.md). Everything here runs
 * with the GIL held; the GIL is what makes the per-thread state and the globals safe
 * without locks. The only places where other Python code can run (and so re-enter
 * this module, or stop recording under us) are the session callbacks, the test clock,
 * the threading look-ups on a thread's first event and a few Py_DECREFs; every one of
 * those is followed by a re-check of the global epoch before any state is touched.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define SLOT 32
#define KIND_EVENT 1u
#define FLAG_ERROR (1u << 8)
#define DEPTH_SHIFT 16
#define MAX_DEPTH 0xFFFFu
#define CAPSULE_NAME "liteprof.record._core.thread_state"
#define FREELIST_MAX 64
/* Bound on how often one event retries after a callback changed the thread's state;
 * each retry follows real progress, so this is only a guard against pathological
 * re-entrant callbacks. */
#define MAX_WRITE_TRIES 16
/* Events waiting per thread while its block is busy; beyond, they are dropped. */
#define MAX_PENDING 4096
#define KIND_LANE 2u

#if defined(__GNUC__) || defined(__clang__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#endif

/* -- global recording state -------------------------------------------------------- */

typedef struct {
    uint64_t epoch; /* valid while equal to g_epoch */
    uint32_t id;
} NameCache;

typedef struct {
    PyObject *key; /* strong: identity must not be recycled while the frame exists */
    int64_t start; /* ticks: TSC ticks if tsc, else CLOCK_MONOTONIC (or test clock) ns */
    int64_t child;
    uint64_t epoch;
    uint32_t depth;
    uint32_t tsc; /* the clock start was read with (the clock may change while it is open) */
} Frame;

/* A lane of one thread (docs/FORMAT.md, "Lane slot"): the scopes open in one asyncio task or
 * greenlet, or, for lane 0 (obj NULL, id 0), outside any. Scopes nest, and charge their
 * time to their parent, only within their own lane, so pushing and popping cost O(1)
 * however many other tasks hold scopes open. The rules (which lane, ids, when a lane is
 * forgotten) are those of _pyrecorder.py's module docstring; both backends follow them to
 * the byte. */
typedef struct Lane {
    PyObject *obj; /* strong: the task or greenlet, so its identity cannot be recycled */
    uint64_t id;
    Frame *stack;
    Py_ssize_t n, cap;
} Lane;

/* An event that closed while its thread's block was busy (a callback replacing it, or a
 * scope closed inside a callback on this thread), stored once the callback is done. */
typedef struct {
    uint64_t epoch;
    uint64_t lane;
    int64_t start, dur, child;
    PyObject *name; /* strong */
    uint32_t depth;
    int error;
} Pending;

typedef struct ThreadState {
    struct ThreadState *prev, *next;
    int linked;
    uint64_t serial; /* unique per state: a raw pointer alone could be a recycled one */
    Lane lane0;
    Lane **lanes; /* open addressing on obj, linear probing; the lanes other than lane 0 */
    size_t lanes_cap, lanes_n;
    uint64_t lanes_count; /* ids handed out so far: ids are 1, 2, ... in first-use order */
    Lane *cur;            /* the current lane: that of ctx */
    PyObject *ctx;        /* strong: the contextvars Context cur was found for, or NULL */
    uint64_t epoch; /* epoch this thread was attached in (0: not attached) */
    PyObject *mm;   /* strong reference to the current block, or NULL */
    Py_buffer buf;  /* writable export of mm; held exactly while mm != NULL */
    Py_ssize_t pos, end, size;
    uint64_t blane; /* the lane in force at pos in the current block */
    long tidx;
    /* The thread that owns the state (threading.Thread, native id), known from its first
     * scope on: another thread that closes a scope it opened may be the one to attach it. */
    PyObject *thread, *native;
    int busy; /* a callback is replacing this thread's block or attachment */
    Pending *pending;
    Py_ssize_t npending, cappending;
} ThreadState;

/* Block sizes come from liteprof.log.format at import, so the two backends cannot drift. */
static Py_ssize_t min_block = 4096;
static Py_ssize_t max_block = 1024 * 1024;

static int g_on = 0;
/* Bumped by start, stop and after_fork_child: frames and thread attachments carry the
 * epoch they were made in, so anything older is recognised as not ours to write. */
static uint64_t g_epoch = 1;
static PyObject *g_session = NULL;
static PyObject *g_names = NULL; /* dict name -> int id, for the current epoch */
static PyObject *g_clock = NULL; /* test clock, or NULL for CLOCK_MONOTONIC */
static PyObject *g_noop = NULL;
static ThreadState *g_states = NULL; /* all live thread states, so stop() reaches them */
static uint64_t g_serial = 0;
/* Initial-exec TLS: one load from the thread pointer instead of a __tls_get_addr call
 * per access (this module is dlopen'ed, which defaults to the general-dynamic model);
 * the hot path touches these several times per event. The 16 bytes come from the static
 * TLS surplus that glibc keeps for such modules. */
#if defined(__GNUC__) && defined(__linux__)
#define HOT_TLS _Thread_local __attribute__((tls_model("initial-exec")))
#else
#define HOT_TLS _Thread_local
#endif
static HOT_TLS ThreadState *t_state = NULL;
/* Set while this thread is inside a session callback. Code that the callback runs on this
 * thread (a finalizer the GC runs, a signal handler, a sys.settrace hook, an instrumented
 * logging handler) may close scopes too; those that need a callback themselves wait in
 * their thread's pending queue until the callback is done, because the writer's locks are
 * not re-entrant and would deadlock. */
static HOT_TLS int t_in_callback = 0;

/* What the lane of running code is read from, bound once the module is imported (never
 * imported from here: that would cost every user, and importing _asyncio first breaks
 * asyncio.current_task). Strong references. */
static PyObject *g_running_loop = NULL, *g_current_task = NULL, *g_getcurrent = NULL;
/* A scope name that is not a str costs its event only, with one warning per process. */
static int g_bad_name_warned = 0;

static PyObject *str_state_key, *str_thread, *str_block, *str_release, *str_name_id,
    *str_get_native_id, *str_current_thread, *str_name, *str_update_wrapper,
    *str_qualname, *str_asyncio, *str_events, *str_get_running_loop, *str_current_task,
    *str_greenlet, *str_getcurrent, *str_parent, *str_liteprof, *str_Scope;

/* -- little helpers ---------------------------------------------------------------- */

static inline void
put64(char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
#if PY_BIG_ENDIAN
    u = __builtin_bswap64(u);
#endif
    memcpy(p, &u, 8);
}

static inline void
put32(char *p, uint32_t v)
{
#if PY_BIG_ENDIAN
    v = __builtin_bswap32(v);
#endif
    memcpy(p, &v, 4);
}

/* The flags word marks a slot as an event, so it is stored last, with release order:
 * a reader (or a crash) never sees the kind set before the fields it vouches for. */
static inline void
put32_release(char *p, uint32_t v)
{
#if PY_BIG_ENDIAN
    v = __builtin_bswap32(v);
#endif
#if defined(__GNUC__) || defined(__clang__)
    __atomic_store_n((uint32_t *)(void *)p, v, __ATOMIC_RELEASE);
#else
    memcpy(p, &v, 4);
#endif
}


#include "_clock.h"

static int
clock_py(int64_t *out)
{
    PyObject *c = g_clock;
    Py_INCREF(c);
    PyObject *r = PyObject_CallNoArgs(c);
    Py_DECREF(c);
    if (r == NULL)
        return -1;
    long long v = PyLong_AsLongLong(r);
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* The pure-Python twin swallows these from its write path (a block closed under it), as
 * does this one, with BufferError, which only the buffer protocol raises; anything else
 * (KeyboardInterrupt from a signal handler run inside a callback, MemoryError)
 * propagates. Returns 0 (event dropped) or -1 (error set). */
static int
drop_or_raise(void)
{
    if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_TypeError) ||
        PyErr_ExceptionMatches(PyExc_OSError) || PyErr_ExceptionMatches(PyExc_BufferError)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

static inline int
stale(uint64_t epoch0)
{
    return g_epoch != epoch0 || !g_on;
}

/* -- thread states ----------------------------------------------------------------- */

static void
state_link(ThreadState *st)
{
    st->prev = NULL;
    st->next = g_states;
    if (g_states)
        g_states->prev = st;
    g_states = st;
    st->linked = 1;
}

static void
state_unlink(ThreadState *st)
{
    if (!st->linked)
        return;
    if (st->prev)
        st->prev->next = st->next;
    else
        g_states = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->prev = st->next = NULL;
    st->linked = 0;
}

/* Drops the block's buffer export and hands back the (owned) mapping, so the caller
 * decides when the Py_DECREF (which may run code) happens. */
static PyObject *
state_detach(ThreadState *st)
{
    PyObject *mm = st->mm;
    if (mm != NULL) {
        PyBuffer_Release(&st->buf);
        st->mm = NULL;
    }
    st->pos = st->end = 0;
    return mm;
}

/* Detach every thread's block except skip's; with unlink_others, also forget those
 * states. Restarts from the head after each Py_DECREF because that may run code
 * that changes the list. */
static void
detach_all(ThreadState *skip, int unlink_others)
{
    for (;;) {
        ThreadState *st = g_states;
        while (st != NULL) {
            if (st != skip && (st->mm != NULL || unlink_others))
                break;
            st = st->next;
        }
        if (st == NULL)
            return;
        if (unlink_others)
            state_unlink(st);
        PyObject *mm = state_detach(st);
        Py_XDECREF(mm);
    }
}

static void
lane_release(Lane *lane)
{
    for (Py_ssize_t i = 0; i < lane->n; i++)
        Py_DECREF(lane->stack[i].key);
    lane->n = 0;
    PyMem_RawFree(lane->stack);
    lane->stack = NULL;
    lane->cap = 0;
}

/* The state is unreachable first (t_state cleared, unlinked; a ScopeCall finds states only
 * through g_states), so the code that releasing its references may run cannot find it. */
static void
state_free(ThreadState *st)
{
    if (t_state == st)
        t_state = NULL;
    state_unlink(st);
    PyObject *mm = state_detach(st);
    lane_release(&st->lane0);
    for (size_t j = 0; j < st->lanes_cap; j++) {
        Lane *lane = st->lanes[j];
        if (lane != NULL) {
            lane_release(lane);
            Py_DECREF(lane->obj);
            PyMem_RawFree(lane);
        }
    }
    PyMem_RawFree(st->lanes);
    for (Py_ssize_t i = 0; i < st->npending; i++)
        Py_DECREF(st->pending[i].name);
    PyMem_RawFree(st->pending);
    Py_XDECREF(st->ctx);
    Py_XDECREF(st->thread);
    Py_XDECREF(st->native);
    PyMem_RawFree(st);
    Py_XDECREF(mm);
}

/* Runs when the thread's PyThreadState is cleared (thread exit, interpreter shutdown,
 * or, in a forked child, for the threads that did not survive the fork), GIL held. */
static void
state_capsule_destructor(PyObject *cap)
{
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    ThreadState *st = (ThreadState *)PyCapsule_GetPointer(cap, CAPSULE_NAME);
    if (st != NULL)
        state_free(st);
    else
        PyErr_Clear();
    PyErr_Restore(et, ev, tb);
}

/* Remember which thread owns st, the current thread's state. 0, or -1 (error set). */
static int
state_identify(ThreadState *st)
{
    PyObject *threading = PyImport_ImportModule("threading");
    if (threading == NULL)
        return -1;
    PyObject *native = PyObject_CallMethodNoArgs(threading, str_get_native_id);
    PyObject *thread = native ? PyObject_CallMethodNoArgs(threading, str_current_thread) : NULL;
    Py_DECREF(threading);
    if (thread == NULL) {
        Py_XDECREF(native);
        return -1;
    }
    Py_XSETREF(st->native, native);
    Py_XSETREF(st->thread, thread);
    return 0;
}

static ThreadState *
state_create(void)
{
    PyObject *dict = PyThreadState_GetDict();
    if (dict == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "liteprof: no thread state dict");
        return NULL;
    }
    ThreadState *st = (ThreadState *)PyMem_RawCalloc(1, sizeof(ThreadState));
    if (st == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    PyObject *cap = PyCapsule_New(st, CAPSULE_NAME, state_capsule_destructor);
    if (cap == NULL) {
        PyMem_RawFree(st);
        return NULL;
    }
    st->serial = ++g_serial;
    st->cur = &st->lane0;
    state_link(st);
    t_state = st;
    if (PyDict_SetItem(dict, str_state_key, cap) < 0) {
        Py_DECREF(cap); /* frees st and clears t_state */
        return NULL;
    }
    Py_DECREF(cap);
    /* Not known yet on failure: attach() tries again, on this thread. */
    if (state_identify(st) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL;
        PyErr_Clear();
    }
    return st;
}

static int
lane_grow(Lane *lane)
{
    Py_ssize_t cap = lane->cap ? lane->cap * 2 : 8;
    if ((size_t)cap > PY_SSIZE_T_MAX / sizeof(Frame)) {
        PyErr_NoMemory();
        return -1;
    }
    Frame *s = (Frame *)PyMem_RawRealloc(lane->stack, (size_t)cap * sizeof(Frame));
    if (s == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    lane->stack = s;
    lane->cap = cap;
    return 0;
}

/* -- the lane table: a thread's lanes other than lane 0, by the identity of their object */

static inline size_t
lane_slot(PyObject *obj, size_t mask)
{
    uint64_t h = (uint64_t)(uintptr_t)obj * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 29) & mask;
}

/* The lane of obj, or NULL. Compares pointers only, so obj may be a stale pointer. */
static Lane *
lane_find(ThreadState *st, PyObject *obj)
{
    if (st->lanes_n == 0)
        return NULL;
    size_t mask = st->lanes_cap - 1;
    for (size_t i = lane_slot(obj, mask);; i = (i + 1) & mask) {
        Lane *lane = st->lanes[i];
        if (lane == NULL || lane->obj == obj)
            return lane;
    }
}

static int
lane_insert(ThreadState *st, Lane *lane)
{
    if ((st->lanes_n + 1) * 2 > st->lanes_cap) {
        size_t cap = st->lanes_cap ? st->lanes_cap * 2 : 16;
        Lane **tab = (Lane **)PyMem_RawCalloc(cap, sizeof(Lane *));
        if (tab == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t j = 0; j < st->lanes_cap; j++) {
            Lane *l = st->lanes[j];
            if (l == NULL)
                continue;
            size_t i = lane_slot(l->obj, cap - 1);
            while (tab[i] != NULL)
                i = (i + 1) & (cap - 1);
            tab[i] = l;
        }
        PyMem_RawFree(st->lanes);
        st->lanes = tab;
        st->lanes_cap = cap;
    }
    size_t mask = st->lanes_cap - 1;
    size_t i = lane_slot(lane->obj, mask);
    while (st->lanes[i] != NULL)
        i = (i + 1) & mask;
    st->lanes[i] = lane;
    st->lanes_n++;
    return 0;
}

/* Forget an idle lane (no frame open, not current): out of the table (backward-shift
 * deletion keeps every probe sequence whole) and freed. Returns the reference to its object
 * for the caller to release once its own state is consistent (releasing may run code). */
static PyObject *
lane_forget(ThreadState *st, Lane *lane)
{
    size_t mask = st->lanes_cap - 1;
    size_t i = lane_slot(lane->obj, mask);
    while (st->lanes[i] != lane)
        i = (i + 1) & mask;
    st->lanes[i] = NULL;
    for (size_t j = (i + 1) & mask; st->lanes[j] != NULL; j = (j + 1) & mask) {
        size_t home = lane_slot(st->lanes[j]->obj, mask);
        /* the entry at j may move to the hole at i unless its home lies in (i, j] */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            st->lanes[i] = st->lanes[j];
            st->lanes[j] = NULL;
            i = j;
        }
    }
    st->lanes_n--;
    PyObject *obj = lane->obj;
    PyMem_RawFree(lane->stack);
    PyMem_RawFree(lane);
    return obj;
}

/* -- which lane: the current asyncio task, else greenlet, else lane 0 ----------------- */

/* Borrowed sys.modules[name], or NULL: never imports. */
static PyObject *
loaded_module(PyObject *name)
{
    PyObject *mods = PyImport_GetModuleDict();
    PyObject *mod = mods ? PyDict_GetItemWithError(mods, name) : NULL;
    if (mod == NULL)
        PyErr_Clear();
    return mod;
}

static int
bind_asyncio(void)
{
    PyObject *mod = loaded_module(str_asyncio);
    if (mod == NULL)
        return 0;
    PyObject *events = PyObject_GetAttr(mod, str_events);
    PyObject *running = events ? PyObject_GetAttr(events, str_get_running_loop) : NULL;
    PyObject *current = running ? PyObject_GetAttr(mod, str_current_task) : NULL;
    Py_XDECREF(events);
    if (current == NULL) { /* still importing: no loop can be running yet */
        Py_XDECREF(running);
        return PyErr_ExceptionMatches(PyExc_Exception) ? (PyErr_Clear(), 0) : -1;
    }
    Py_XSETREF(g_running_loop, running);
    Py_XSETREF(g_current_task, current);
    return 1;
}

static int
bind_greenlet(void)
{
    PyObject *mod = loaded_module(str_greenlet);
    if (mod == NULL)
        return 0;
    PyObject *getcurrent = PyObject_GetAttr(mod, str_getcurrent);
    if (getcurrent == NULL)
        return PyErr_ExceptionMatches(PyExc_Exception) ? (PyErr_Clear(), 0) : -1;
    Py_XSETREF(g_getcurrent, getcurrent);
    return 1;
}

/* The object whose lane the running code is in: *key is a new reference to the current
 * asyncio task or greenlet, or NULL for lane 0. Runs Python code. 0, or -1 with an error
 * set (a BaseException such as KeyboardInterrupt; any Exception means lane 0). */
static int
lane_key(PyObject **key)
{
    PyObject *k = NULL;
    int r = 0;
    *key = NULL;
    if (g_current_task != NULL || (r = bind_asyncio()) > 0) {
        PyObject *loop = PyObject_CallNoArgs(g_running_loop);
        if (loop == NULL)
            goto error;
        if (loop != Py_None) {
            k = PyObject_CallOneArg(g_current_task, loop);
            Py_DECREF(loop);
            if (k == NULL)
                goto error;
            if (k == Py_None)
                Py_CLEAR(k);
        }
        else {
            Py_DECREF(loop);
        }
    }
    else if (r < 0) {
        return -1;
    }
    if (k == NULL && (g_getcurrent != NULL || (r = bind_greenlet()) > 0)) {
        PyObject *g = PyObject_CallNoArgs(g_getcurrent);
        if (g == NULL)
            goto error;
        PyObject *parent = PyObject_GetAttr(g, str_parent);
        if (parent == NULL) {
            Py_DECREF(g);
            goto error;
        }
        if (parent == Py_None) /* only a thread's main greenlet has no parent */
            Py_DECREF(g);
        else
            k = g;
        Py_DECREF(parent);
    }
    else if (k == NULL && r < 0) {
        return -1;
    }
    *key = k;
    return 0;
error:
    Py_XDECREF(k);
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

/* The lane of the code running now in context ctx; it becomes the current lane (st->cur,
 * for st->ctx). References for the caller to release once it is done go to drop[0..2].
 * NULL with an error set on failure. */
static Lane *
resolve(ThreadState *st, PyObject *ctx, PyObject **drop)
{
    PyObject *key;
    Py_INCREF(ctx); /* the Python code lane_key runs may drop every other reference */
    if (lane_key(&key) < 0) {
        Py_DECREF(ctx);
        return NULL;
    }
    /* Read st only now: code run above may have entered and left scopes here. */
    Lane *lane;
    if (key == NULL) {
        lane = &st->lane0;
    }
    else if ((lane = lane_find(st, key)) != NULL) {
        drop[0] = key;
    }
    else {
        lane = (Lane *)PyMem_RawCalloc(1, sizeof(Lane));
        if (lane == NULL || (lane->obj = key, lane_insert(st, lane) < 0)) {
            if (lane == NULL)
                PyErr_NoMemory();
            PyMem_RawFree(lane);
            Py_DECREF(key);
            Py_DECREF(ctx);
            return NULL;
        }
        lane->id = ++st->lanes_count;
    }
    Lane *old = st->cur;
    st->cur = lane;
    drop[1] = st->ctx;
    st->ctx = ctx;
    if (old != lane && old != &st->lane0 && old->n == 0)
        drop[2] = lane_forget(st, old);
    return lane;
}

static PyObject *
force_context(PyThreadState *ts)
{
    /* The thread's base Context is created lazily by the first contextvars access; if
     * that happened between a scope's enter and exit, the two would see different
     * context keys. Creating it now keeps the key stable. Once per thread. */
    PyObject *copy = PyContext_CopyCurrent();
    if (copy == NULL)
        return NULL;
    Py_DECREF(copy);
    if (ts->context == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "liteprof: no current context");
        return NULL;
    }
    return ts->context;
}

/* The current lane of st, the current thread's state (see resolve for drop). */
static inline Lane *
current_lane(ThreadState *st, PyObject **drop)
{
    PyThreadState *ts = PyThreadState_Get();
    PyObject *ctx = ts->context;
    if (ctx != NULL && ctx == st->ctx)
        return st->cur;
    if (ctx == NULL && (ctx = force_context(ts)) == NULL)
        return NULL;
    return resolve(st, ctx, drop);
}

/* -- the log: attach, blocks, names, slots ------------------------------------------ */

static int next_block(ThreadState *st);

/* First event of this thread in this epoch: register the thread, get a block.
 * Returns 1 (attached), 0 (recording stopped or failed: drop), -1 (error set). */
static int
attach(ThreadState *st)
{
    PyObject *session = g_session;
    if (session == NULL || !g_on)
        return 0;
    Py_INCREF(session);
    uint64_t epoch0 = g_epoch;
    PyObject *tname = NULL, *r = NULL;
    int rc = 0;
    if (st->thread == NULL && (st != t_state || state_identify(st) < 0))
        goto error;
    PyObject *native = st->native;
    tname = PyObject_GetAttr(st->thread, str_name);
    if (tname == NULL)
        goto error;
    {
        PyObject *args[3] = {session, native, tname};
        r = PyObject_VectorcallMethod(str_thread, args,
                                      3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    if (r == NULL)
        goto error;
    if (stale(epoch0) || g_session != session || r == Py_None)
        goto done;
    long tidx = PyLong_AsLong(r);
    if (tidx == -1 && PyErr_Occurred())
        goto error;
    if (tidx < 0)
        goto done;
    PyObject *old = state_detach(st);
    st->tidx = tidx;
    st->size = min_block;
    st->epoch = g_epoch;
    Py_XDECREF(old);
    rc = next_block(st);
    goto done;
error:
    rc = PyErr_Occurred() ? drop_or_raise() : 0;
done:
    Py_XDECREF(tname);
    Py_XDECREF(r);
    Py_DECREF(session);
    return rc;
}

/* Mirrors _pyrecorder._next_block: requested sizes double from MIN_BLOCK up to
 * MAX_BLOCK (the writer may round a block up: its length is what counts). The full
 * block's buffer is released before session.release(), which closes the mapping and
 * cannot while an export exists. Returns 1, 0 (drop) or -1 (error set). */
static int
next_block(ThreadState *st)
{
    PyObject *session = g_session;
    if (session == NULL)
        return 0;
    clock_tick();
    Py_INCREF(session);
    uint64_t epoch0 = g_epoch;
    Py_ssize_t size = st->size;
    if (st->mm != NULL) {
        size *= 2;
        if (size > max_block)
            size = max_block;
    }
    st->size = size;
    PyObject *mm;
    {
        PyObject *owner = PyLong_FromLong(st->tidx);
        PyObject *psize = owner ? PyLong_FromSsize_t(size) : NULL;
        if (psize == NULL) {
            Py_XDECREF(owner);
            Py_DECREF(session);
            return -1;
        }
        PyObject *args[3] = {session, owner, psize};
        mm = PyObject_VectorcallMethod(str_block, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                       NULL);
        Py_DECREF(owner);
        Py_DECREF(psize);
    }
    if (mm == NULL) {
        Py_DECREF(session);
        return drop_or_raise();
    }
    if (stale(epoch0)) {
        /* stop() ran inside the callback and already detached this thread. */
        Py_DECREF(mm);
        Py_DECREF(session);
        return 0;
    }
    PyObject *old = state_detach(st);
    int ok = 0;
    if (mm != Py_None) {
        if (PyObject_GetBuffer(mm, &st->buf, PyBUF_WRITABLE) == 0) {
            Py_ssize_t end = st->buf.len - st->buf.len % SLOT;
            if (end >= 2 * SLOT) {
                st->mm = mm;
                mm = NULL;
                st->pos = SLOT;
                st->end = end;
                st->blane = 0; /* every block starts in lane 0 */
                ok = 1;
            }
            else {
                PyBuffer_Release(&st->buf);
            }
        }
        else {
            PyErr_Clear();
        }
    }
    Py_XDECREF(mm);
    if (!ok)
        st->epoch = 0;
    int rc = 0;
    if (old != NULL) {
        PyObject *r = PyObject_CallMethodOneArg(session, str_release, old);
        Py_DECREF(old);
        if (r == NULL)
            rc = drop_or_raise();
        else
            Py_DECREF(r);
    }
    Py_DECREF(session);
    if (rc < 0)
        return -1;
    if (!ok || stale(epoch0))
        return 0;
    return 1;
}

/* A scope name that is not a str: its event is dropped, and the first one in the process
 * is reported with one warning through logger "liteprof". 0, or -1 (a BaseException from
 * the logging call: KeyboardInterrupt, say). */
static int
bad_name(PyObject *name)
{
    if (g_bad_name_warned)
        return 0;
    g_bad_name_warned = 1;
    PyObject *logging = PyImport_ImportModule("logging");
    PyObject *logger = logging ? PyObject_CallMethod(logging, "getLogger", "s", "liteprof") : NULL;
    PyObject *r = logger ? PyObject_CallMethod(logger, "warning", "ss",
                                               "liteprof: scope name must be str, not %s: "
                                               "such events are not recorded (warned once "
                                               "per process)",
                                               Py_TYPE(name)->tp_name)
                         : NULL;
    Py_XDECREF(logging);
    Py_XDECREF(logger);
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

#define QUEUED 2 /* write_one: it needs a callback that cannot run now */

/* The id of name in this file. Returns 1 with *out set, 0 (drop), QUEUED or -1 (error
 * set). A str subclass is looked up by its value (an exact copy), so that no __hash__ or
 * __eq__ of its own ever runs here. */
static int
name_lookup(PyObject *name, uint32_t *out)
{
    if (!PyUnicode_Check(name))
        return bad_name(name);
    PyObject *key;
    if (PyUnicode_CheckExact(name)) {
        Py_INCREF(name);
        key = name;
    }
    else if ((key = PyUnicode_FromObject(name)) == NULL) {
        return drop_or_raise();
    }
    int rc = 0;
    PyObject *v = PyDict_GetItemWithError(g_names, key);
    if (v != NULL) {
        *out = (uint32_t)PyLong_AsUnsignedLong(v);
        Py_DECREF(key);
        return 1;
    }
    PyObject *session = g_session;
    if (PyErr_Occurred() || t_in_callback || session == NULL) {
        rc = PyErr_Occurred() ? drop_or_raise() : t_in_callback ? QUEUED : 0;
        Py_DECREF(key);
        return rc;
    }
    Py_INCREF(session);
    uint64_t epoch0 = g_epoch;
    t_in_callback = 1;
    PyObject *r = PyObject_CallMethodOneArg(session, str_name_id, key);
    t_in_callback = 0;
    Py_DECREF(session);
    if (r == NULL) {
        Py_DECREF(key);
        return drop_or_raise();
    }
    if (stale(epoch0) || r == Py_None)
        goto done;
    long id = PyLong_AsLong(r);
    if (id == -1 && PyErr_Occurred()) {
        rc = drop_or_raise();
        goto done;
    }
    if (id < 0 || (unsigned long)id > 0xFFFFFFFFul)
        goto done;
    if (PyDict_SetItem(g_names, key, r) < 0) {
        rc = drop_or_raise();
        goto done;
    }
    *out = (uint32_t)id;
    rc = 1;
done:
    Py_DECREF(r);
    Py_DECREF(key);
    return rc;
}

static inline void
store_event(char *p, int64_t start, int64_t dur, int64_t child, uint32_t ident,
            uint32_t depth, int error)
{
    uint32_t flags = (error ? (KIND_EVENT | FLAG_ERROR) : KIND_EVENT) |
                     ((depth < MAX_DEPTH ? depth : MAX_DEPTH) << DEPTH_SHIFT);
    put64(p, start);
    put64(p + 8, dur);
    put64(p + 16, child);
    put32(p + 24, ident);
    put32_release(p + 28, flags);
}

/* Store one event (after a lane slot where its lane is not the one in force) into st's
 * block. Callbacks on the slow paths may change anything, so after each the loop
 * re-validates from the top. While a callback replaces st's block (st->busy) or this
 * thread is inside one, an event that needs a callback itself is not stored: QUEUED.
 * Returns 0 (written or dropped), QUEUED or -1 (error). */
static int
write_one(ThreadState *st, uint64_t lane, int64_t start, int64_t dur, int64_t child,
          PyObject *name, uint32_t depth, int error, NameCache *cache)
{
    for (int tries = 0; tries < MAX_WRITE_TRIES; tries++) {
        if (!g_on)
            return 0;
        if (st->epoch != g_epoch) {
            if (st->busy || t_in_callback)
                return QUEUED;
            st->busy = t_in_callback = 1;
            int r = attach(st);
            st->busy = t_in_callback = 0;
            if (r <= 0)
                return r;
            continue;
        }
        uint32_t ident = 0;
        if (cache != NULL && cache->epoch == g_epoch) {
            ident = cache->id;
        }
        else {
            int r = name_lookup(name, &ident);
            if (r != 1)
                return r;
            /* the callback may have run anything */
            if (st->epoch != g_epoch || !g_on)
                continue;
            if (cache != NULL) {
                cache->epoch = g_epoch;
                cache->id = ident;
            }
        }
        Py_ssize_t need = lane == st->blane ? SLOT : 2 * SLOT;
        if (st->pos + need > st->end) {
            if (st->busy || t_in_callback)
                return QUEUED;
            st->busy = t_in_callback = 1;
            int r = next_block(st);
            st->busy = t_in_callback = 0;
            if (r <= 0)
                return r;
            continue;
        }
        char *p = (char *)st->buf.buf + st->pos;
        if (need != SLOT) {
            put64(p, (int64_t)lane); /* the rest of a fresh slot is zero already */
            put32_release(p + 28, KIND_LANE);
            st->blane = lane;
            p += SLOT;
        }
        store_event(p, start, dur, child, ident, depth, error);
        st->pos += need;
        return 0;
    }
    return 0;
}

static void
queue_event(ThreadState *st, uint64_t lane, int64_t start, int64_t dur, int64_t child,
            PyObject *name, uint32_t depth, int error)
{
    if (st->npending == st->cappending) {
        Py_ssize_t cap = st->cappending ? st->cappending * 2 : 16;
        Pending *q;
        if (cap > MAX_PENDING ||
            (q = (Pending *)PyMem_RawRealloc(st->pending, (size_t)cap * sizeof(Pending))) == NULL)
            return; /* a handler recording thousands of scopes meanwhile: the rest is dropped */
        st->pending = q;
        st->cappending = cap;
    }
    Pending *ev = &st->pending[st->npending++];
    ev->epoch = g_epoch;
    ev->lane = lane;
    ev->start = start;
    ev->dur = dur;
    ev->child = child;
    Py_INCREF(name);
    ev->name = name;
    ev->depth = depth;
    ev->error = error;
}

/* Store the events that waited in st's queue, oldest first. 0, or -1 (error set). */
static int
drain(ThreadState *st)
{
    while (st->npending > 0 && !st->busy && !t_in_callback) {
        Pending ev = st->pending[0];
        st->npending--;
        memmove(&st->pending[0], &st->pending[1], (size_t)st->npending * sizeof(Pending));
        int r = 0;
        if (ev.epoch == g_epoch) {
            r = write_one(st, ev.lane, ev.start, ev.dur, ev.child, ev.name, ev.depth,
                          ev.error, NULL);
            if (r == QUEUED) {
                queue_event(st, ev.lane, ev.start, ev.dur, ev.child, ev.name, ev.depth,
                            ev.error);
                r = 0;
            }
        }
        Py_DECREF(ev.name);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* Store one event into st's block, or queue it (see write_one); then whatever waits in
 * the queues of st and of this thread. 0, or -1 (error set). */
static int
write_event(ThreadState *st, uint64_t lane, int64_t start, int64_t dur, int64_t child,
            PyObject *name, uint32_t depth, int error, NameCache *cache)
{
    /* The common case inline: attached, the name's id known, the lane in force, room. */
    if (LIKELY(st->epoch == g_epoch && g_on && lane == st->blane && st->pos + SLOT <= st->end &&
               st->npending == 0)) {
        PyObject *v;
        if (cache != NULL && cache->epoch == g_epoch) {
            store_event((char *)st->buf.buf + st->pos, start, dur, child, cache->id, depth,
                        error);
            st->pos += SLOT;
            return 0;
        }
        /* an exact str hashes and compares without running any code of its own */
        if (cache == NULL && PyUnicode_CheckExact(name) &&
            (v = PyDict_GetItemWithError(g_names, name)) != NULL) {
            store_event((char *)st->buf.buf + st->pos, start, dur, child,
                        (uint32_t)PyLong_AsUnsignedLong(v), depth, error);
            st->pos += SLOT;
            return 0;
        }
    }
    int r = write_one(st, lane, start, dur, child, name, depth, error, cache);
    if (r == QUEUED) {
        queue_event(st, lane, start, dur, child, name, depth, error);
        return 0;
    }
    if (r == 0 && st->npending)
        r = drain(st);
    ThreadState *me = t_state;
    if (r == 0 && me != NULL && me != st && me->npending)
        r = drain(me);
    return r;
}

/* -- the hot path: push and pop ------------------------------------------------------ */

/* A duration and a start time in ns from a frame's start and the end reading (end_tsc:
 * the clock end was read with; the clock can change while a scope is open, when TSC
 * calibration completes). */
static inline void
frame_times(const Frame *f, int64_t end, int end_tsc, int64_t *start, int64_t *dur)
{
    if (g_clock != NULL) {
        *start = f->start;
        *dur = end - f->start;
        return;
    }
    if ((int)f->tsc == end_tsc) {
        if (end_tsc) {
            *start = ticks_time(f->start);
            *dur = ticks_dur(end - f->start);
        }
        else {
            *start = f->start;
            *dur = end > f->start ? end - f->start : 0;
        }
        return;
    }
    int64_t s0 = f->tsc ? ticks_time(f->start) : f->start;
    int64_t e0 = end_tsc ? ticks_time(end) : end;
    *start = s0;
    *dur = e0 > s0 ? e0 - s0 : 0;
}

/* The clock reading at a scope's exit; *tsc: which clock. 0, or -1 (test clock raised). */
static inline int
read_end(int64_t *end, int *tsc)
{
    if (g_clock == NULL) {
        *tsc = g_tsc;
        *end = now_ticks();
        return 0;
    }
    *tsc = 0;
    return clock_py(end);
}

/* lane_out: where to put the lane the frame went into, or NULL. */
static int
push(PyObject *key, Lane **lane_out)
{
    int64_t start = 0;
    if (g_clock != NULL && clock_py(&start) < 0)
        return -1;
    ThreadState *st = t_state;
    if (UNLIKELY(st == NULL)) {
        st = state_create();
        if (st == NULL)
            return -1;
    }
    PyObject *drop[3] = {NULL, NULL, NULL};
    PyObject *ctx = PyThreadState_Get()->context;
    Lane *lane = LIKELY(ctx != NULL && ctx == st->ctx) ? st->cur : current_lane(st, drop);
    int rc = 0;
    if (UNLIKELY(lane == NULL || (lane->n == lane->cap && lane_grow(lane) < 0))) {
        rc = -1;
    }
    else {
        uint32_t depth = 0;
        if (lane->n) {
            depth = lane->stack[lane->n - 1].depth;
            depth += depth != UINT32_MAX;
        }
        Frame *f = &lane->stack[lane->n++];
        Py_INCREF(key);
        f->key = key;
        f->child = 0;
        f->depth = depth;
        f->epoch = g_epoch;
        f->tsc = (uint32_t)g_tsc;
        f->start = g_clock == NULL ? now_ticks() : start;
        if (lane_out != NULL)
            *lane_out = lane;
    }
    if (UNLIKELY(drop[0] != NULL || drop[1] != NULL || drop[2] != NULL)) {
        Py_XDECREF(drop[0]);
        Py_XDECREF(drop[1]);
        Py_XDECREF(drop[2]);
    }
    return rc;
}

/* The innermost frame of key in lane, or -1. */
static inline Py_ssize_t
find_frame(const Lane *lane, PyObject *key)
{
    Py_ssize_t i = lane->n - 1;
    while (i >= 0 && lane->stack[i].key != key)
        i--;
    return i;
}

/* Take frame i out of lane (one of st's), charge its time to the frame below it, and
 * store its event into st's block: st is the thread that entered the scope, whose lanes
 * and depths the event belongs to. */
static int
pop_frame(ThreadState *st, Lane *lane, Py_ssize_t i, PyObject *name, int error,
          NameCache *cache)
{
    int64_t end;
    int end_tsc;
    if (read_end(&end, &end_tsc) < 0)
        return -1;
    Frame f = lane->stack[i];
    lane->n--;
    if (i < lane->n) /* out of order: a task or a suspended generator left it first */
        memmove(&lane->stack[i], &lane->stack[i + 1], (size_t)(lane->n - i) * sizeof(Frame));
    int live = f.epoch == g_epoch && g_on;
    int64_t start = 0, dur = 0;
    uint64_t lane_id = lane->id;
    if (live) {
        frame_times(&f, end, end_tsc, &start, &dur);
        if (i > 0)
            lane->stack[i - 1].child += dur;
    }
    PyObject *forgotten = NULL;
    if (lane->n == 0 && lane != st->cur && lane != &st->lane0)
        forgotten = lane_forget(st, lane);
    int rc = live ? write_event(st, lane_id, start, dur, f.child, name, f.depth, error, cache)
                  : 0;
    Py_DECREF(f.key);
    Py_XDECREF(forgotten);
    return rc;
}

/* Whether leaving a scope with exception type et counts as an error: every exception does
 * (KeyboardInterrupt and SystemExit too: the block did not run to its end) except
 * GeneratorExit, with which a generator is closed when its consumer stops early. */
static int
is_error(PyObject *et)
{
    if (et == NULL || et == Py_None)
        return 0;
    if (PyType_Check(et))
        return !PyType_IsSubtype((PyTypeObject *)et, (PyTypeObject *)PyExc_GeneratorExit);
    return !PyObject_TypeCheck(et, (PyTypeObject *)PyExc_GeneratorExit);
}

static int
exit_error_arg(PyObject *const *args, Py_ssize_t nargs, int *error)
{
    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError, "__exit__ expected at most 3 arguments, got %zd",
                     nargs);
        return -1;
    }
    *error = nargs > 0 && is_error(args[0]);
    return 0;
}

#include "_special.h"
#include "_writer.h" /* the log writer's C helpers: SIGBUS guard, fold */

static int
no_args(const char *name, Py_ssize_t nargs)
{
    if (nargs != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no arguments (%zd given)", name, nargs);
        return -1;
    }
    return 0;
}

/* -- _Noop ------------------------------------------------------------------------- */

static PyObject *
noop_enter(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (no_args("__enter__", nargs) < 0)
        return NULL;
    Py_INCREF(self);
    return self;
}

static PyObject *
noop_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_RETURN_NONE;
}

static PyObject *
noop_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    PyObject *func;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "scope() as a decorator takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "__call__", 1, 1, &func))
        return NULL;
    Py_INCREF(func);
    return func;
}

static PyObject *
noop_repr(PyObject *self)
{
    return PyUnicode_FromString("<liteprof.scope (not recording)>");
}

static PyTypeObject NoopType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "liteprof.record._core._Noop",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "What scope() returns while nothing records: one shared do-nothing object.",
    .tp_repr = noop_repr,
    .tp_call = noop_call,
};

/* -- timed_function ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *func;
    PyObject *name;
    PyObject *dict;
    PyObject *weakreflist;
    NameCache cache;
} TimedObject;

/* A plain call returns on the thread and in the lane it was made in, and its frame keeps
 * that lane alive, so the lane push() gave is the one to leave. */
static int
timed_pop(TimedObject *t, Lane *lane, int error)
{
    ThreadState *st = t_state;
    Py_ssize_t i = st != NULL ? find_frame(lane, (PyObject *)t) : -1;
    return i < 0 ? 0 : pop_frame(st, lane, i, t->name, error, &t->cache);
}

static PyObject *
timed_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    TimedObject *t = (TimedObject *)self;
    if (!g_on)
        return PyObject_Vectorcall(t->func, args, nargsf, kwnames);
    Lane *lane;
    if (push(self, &lane) < 0)
        return NULL;
    PyObject *res = PyObject_Vectorcall(t->func, args, nargsf, kwnames);
    if (res != NULL) {
        if (timed_pop(t, lane, 0) < 0) {
            Py_DECREF(res);
            return NULL;
        }
        return res;
    }
    /* The function raised: record the event with the exception put aside, then put
     * the very same exception back. */
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
    if (timed_pop(t, lane, !PyErr_GivenExceptionMatches(exc, PyExc_GeneratorExit)) < 0) {
        PyObject *exc2 = PyErr_GetRaisedException();
        PyException_SetContext(exc2, exc);
        PyErr_SetRaisedException(exc2);
    }
    else {
        PyErr_SetRaisedException(exc);
    }
#else
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    if (timed_pop(t, lane, !PyErr_GivenExceptionMatches(et, PyExc_GeneratorExit)) < 0) {
        PyObject *et2, *ev2, *tb2;
        PyErr_NormalizeException(&et, &ev, &tb);
        if (tb != NULL && ev != NULL)
            PyException_SetTraceback(ev, tb);
        PyErr_Fetch(&et2, &ev2, &tb2);
        PyErr_NormalizeException(&et2, &ev2, &tb2);
        if (ev2 != NULL && ev != NULL)
            PyException_SetContext(ev2, ev);
        else
            Py_XDECREF(ev);
        Py_XDECREF(et);
        Py_XDECREF(tb);
        PyErr_Restore(et2, ev2, tb2);
    }
    else {
        PyErr_Restore(et, ev, tb);
    }
#endif
    return NULL;
}

static PyObject *
timed_descr_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static int
timed_traverse(TimedObject *t, visitproc visit, void *arg)
{
    Py_VISIT(t->func);
    Py_VISIT(t->name);
    Py_VISIT(t->dict);
    return 0;
}

static int
timed_clear(TimedObject *t)
{
    Py_CLEAR(t->func);
    Py_CLEAR(t->name);
    Py_CLEAR(t->dict);
    return 0;
}

static void
timed_dealloc(TimedObject *t)
{
    PyObject_GC_UnTrack(t);
    if (t->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)t);
    timed_clear(t);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyObject *
timed_repr(TimedObject *t)
{
    return PyUnicode_FromFormat("<liteprof timed %R of %R>", t->name, t->func);
}

/* Pickle by reference, as a plain function would be: pickle looks __qualname__ up in
 * __module__ (both copied from the wrapped function) and checks it finds this object. */
static PyObject *
timed_reduce(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyObject_GetAttr(self, str_qualname);
}

static PyMethodDef timed_methods[] = {
    {"__reduce__", timed_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef timed_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TimedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "liteprof.record._core.TimedFunction",
    .tp_basicsize = sizeof(TimedObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = NULL,
    .tp_dealloc = (destructor)timed_dealloc,
    .tp_repr = (reprfunc)timed_repr,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(TimedObject, vectorcall),
    .tp_traverse = (traverseproc)timed_traverse,
    .tp_clear = (inquiry)timed_clear,
    .tp_weaklistoffset = offsetof(TimedObject, weakreflist),
    .tp_methods = timed_methods,
    .tp_getset = timed_getset,
    .tp_descr_get = timed_descr_get,
    .tp_dictoffset = offsetof(TimedObject, dict),
    .tp_free = PyObject_GC_Del,
};

static int
check_name(PyObject *name)
{
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "scope name must be str, not %.200s",
                     Py_TYPE(name)->tp_name);
        return -1;
    }
    return 0;
}

static PyObject *
make_timed(PyObject *func, PyObject *name)
{
    if (check_name(name) < 0)
        return NULL;
    TimedObject *t = PyObject_GC_New(TimedObject, &TimedType);
    if (t == NULL)
        return NULL;
    t->vectorcall = timed_vectorcall;
    Py_INCREF(func);
    t->func = func;
    Py_INCREF(name);
    t->name = name;
    t->dict = NULL;
    t->weakreflist = NULL;
    t->cache.epoch = 0;
    t->cache.id = 0;
    PyObject_GC_Track(t);
    /* functools.wraps semantics (__module__, __name__, __qualname__, __doc__,
     * __annotations__, __dict__, __wrapped__), from the one place that defines them. */
    PyObject *functools = PyImport_ImportModule("functools");
    if (functools == NULL)
        goto error;
    PyObject *args[3] = {functools, (PyObject *)t, func};
    PyObject *r = PyObject_VectorcallMethod(str_update_wrapper, args,
                                            3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(functools);
    if (r == NULL)
        goto error;
    Py_DECREF(r);
    return (PyObject *)t;
error:
    Py_DECREF(t);
    return NULL;
}

static PyObject *
mod_timed_function(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "timed_function() takes 2 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    return make_timed(args[0], args[1]);
}

/* -- _ScopeCall: one use of scope(name) while recording --------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *name;
    /* The thread state and lane it was entered in: it leaves that lane, and its event goes
     * into that thread's block, even when a generator carries it to another task or thread.
     * Not references (a reference would keep a finished thread's state, and its block,
     * alive through any frame left open); the serial tells whether that state still exists,
     * and the lane is looked up again by the identity of its object (lane_obj, compared,
     * never dereferenced) before it is used. */
    ThreadState *st;
    uint64_t serial;
    Lane *lane;
    PyObject *lane_obj;
    /* Entries still open: `with s: with s:` of one object is two scopes, each exit closing
     * the innermost one still open (as in _pyrecorder._reenter). */
    Py_ssize_t nopen;
} ScopeCallObject;

static ScopeCallObject *sc_freelist[FREELIST_MAX];
static int sc_nfree = 0;

static PyTypeObject ScopeCallType;

static void
sc_dealloc(ScopeCallObject *op)
{
    PyObject *name = op->name;
    op->name = NULL;
    if (sc_nfree < FREELIST_MAX)
        sc_freelist[sc_nfree++] = op;
    else
        PyObject_Free(op);
    Py_XDECREF(name);
}

static PyObject *
sc_enter(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Lane *lane;
    if (no_args("__enter__", nargs) < 0 || push(self, &lane) < 0)
        return NULL;
    ScopeCallObject *op = (ScopeCallObject *)self;
    op->st = t_state;
    op->serial = t_state->serial;
    op->lane = lane;
    op->lane_obj = lane->obj;
    op->nopen++;
    Py_INCREF(self);
    return self;
}

static PyObject *
sc_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int error;
    if (exit_error_arg(args, nargs, &error) < 0)
        return NULL;
    ScopeCallObject *op = (ScopeCallObject *)self;
    ThreadState *st = op->st;
    if (st == NULL)
        Py_RETURN_NONE; /* never entered, or left as often as entered */
    if (st != t_state) {
        ThreadState *live = g_states;
        while (live != NULL && (live != st || live->serial != op->serial))
            live = live->next;
        st = live;
    }
    Lane *lane = NULL;
    if (st != NULL)
        lane = op->lane_obj == NULL ? &st->lane0 : lane_find(st, op->lane_obj);
    Py_ssize_t i = lane == op->lane ? find_frame(lane, self) : -1;
    if (i < 0) { /* its thread ended, or a fork or a lane's end took the frame */
        op->st = NULL;
        op->nopen = 0;
        Py_RETURN_NONE;
    }
    if (--op->nopen == 0)
        op->st = NULL;
    if (pop_frame(st, lane, i, op->name, error, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The one positional argument of a scope used as a decorator; 0, or -1 with an error. */
static int
decorator_arg(PyObject *args, PyObject *kwargs, const char *what, PyObject **func)
{
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_Format(PyExc_TypeError, "%s as a decorator takes no keyword arguments", what);
        return -1;
    }
    return PyArg_UnpackTuple(args, "__call__", 1, 1, func) ? 0 : -1;
}

/* Set by liteprof._api: decorating goes through Python so that a coroutine function gets
 * an async wrapper that times the whole await; a plain function gets make_timed's. */
static PyObject *g_decorate = NULL;

static PyObject *
decorate(PyObject *func, PyObject *name)
{
    if (g_decorate != NULL)
        return PyObject_CallFunctionObjArgs(g_decorate, func, name, NULL);
    return make_timed(func, name);
}

static PyObject *
sc_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    PyObject *func;
    if (decorator_arg(args, kwargs, "scope()", &func) < 0)
        return NULL;
    PyObject *name = ((ScopeCallObject *)self)->name;
    if (!PyUnicode_Check(name)) {
        /* Not an exception in the program: one warning, and the function stays as it was. */
        if (bad_name(name) < 0)
            return NULL;
        Py_INCREF(func);
        return func;
    }
    return decorate(func, name);
}

static PyObject *
sc_repr(ScopeCallObject *op)
{
    return PyUnicode_FromFormat("<liteprof.scope %R>", op->name);
}

static PyMemberDef sc_members[] = {
    {"name", T_OBJECT, offsetof(ScopeCallObject, name), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ScopeCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "liteprof.record._core._ScopeCall",
    .tp_basicsize = sizeof(ScopeCallObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One use of scope(name) while recording.",
    .tp_dealloc = (destructor)sc_dealloc,
    .tp_repr = (reprfunc)sc_repr,
    .tp_call = sc_call,
    .tp_members = sc_members,
};

static PyObject *
mod_scope(PyObject *module, PyObject *name)
{
    if (!g_on) {
        Py_INCREF(g_noop);
        return g_noop;
    }
    ScopeCallObject *op;
    if (sc_nfree > 0) {
        op = sc_freelist[--sc_nfree];
    }
    else {
        op = (ScopeCallObject *)PyObject_Malloc(sizeof(ScopeCallObject));
        if (op == NULL)
            return PyErr_NoMemory();
    }
    (void)PyObject_Init((PyObject *)op, &ScopeCallType);
    Py_INCREF(name);
    op->name = name;
    op->st = NULL;
    op->serial = 0;
    op->lane = NULL;
    op->lane_obj = NULL;
    op->nopen = 0;
    return (PyObject *)op;
}

/* -- Scope: reusable, predeclared ---------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *name;
    PyObject *weakreflist;
    NameCache cache;
} ScopeObject;

static PyObject *
scope_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"name", NULL};
    PyObject *name;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Scope", kwlist, &name))
        return NULL;
    if (check_name(name) < 0)
        return NULL;
    ScopeObject *self = (ScopeObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    Py_INCREF(name);
    self->name = name;
    self->weakreflist = NULL;
    self->cache.epoch = 0;
    self->cache.id = 0;
    return (PyObject *)self;
}

static void
scope_dealloc(ScopeObject *self)
{
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    Py_CLEAR(self->name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
scope_enter(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (no_args("__enter__", nargs) < 0)
        return NULL;
    if (g_on && push(self, NULL) < 0)
        return NULL;
    Py_INCREF(self);
    return self;
}

static PyObject *
scope_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int error;
    if (exit_error_arg(args, nargs, &error) < 0)
        return NULL;
    ThreadState *st = t_state;
    if (st == NULL)
        Py_RETURN_NONE;
    /* A Scope may be open in several tasks at once: its frame is its innermost one in the
     * lane of the code running now. */
    PyObject *drop[3] = {NULL, NULL, NULL};
    Lane *lane = current_lane(st, drop);
    int rc = -1;
    if (lane != NULL) {
        Py_ssize_t i = find_frame(lane, self);
        ScopeObject *s = (ScopeObject *)self;
        rc = i < 0 ? 0 : pop_frame(st, lane, i, s->name, error, &s->cache);
    }
    Py_XDECREF(drop[0]);
    Py_XDECREF(drop[1]);
    Py_XDECREF(drop[2]);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
scope_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    PyObject *func;
    if (decorator_arg(args, kwargs, "Scope", &func) < 0)
        return NULL;
    return decorate(func, ((ScopeObject *)self)->name);
}

static PyObject *
scope_repr(ScopeObject *self)
{
    return PyUnicode_FromFormat("liteprof.Scope(%R)", self->name);
}

static PyObject *
scope_reduce(ScopeObject *self, PyObject *Py_UNUSED(ignored))
{
    /* Pickled as liteprof.Scope, whichever backend made it (this type is named so): it
     * unpickles with the recorder of the process that loads it. */
    PyObject *mod = loaded_module(str_liteprof);
    PyObject *public = mod ? PyObject_GetAttr(mod, str_Scope) : NULL;
    if (public == NULL) {
        PyErr_Clear();
        public = (PyObject *)Py_TYPE(self);
        Py_INCREF(public);
    }
    PyObject *r = Py_BuildValue("O(O)", public, self->name);
    Py_DECREF(public);
    return r;
}

static PyObject *
scope_get_name(ScopeObject *self, void *closure)
{
    Py_INCREF(self->name);
    return self->name;
}

static int
scope_set_name(ScopeObject *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete a Scope's name");
        return -1;
    }
    if (check_name(value) < 0)
        return -1;
    Py_INCREF(value);
    Py_SETREF(self->name, value);
    self->cache.epoch = 0; /* the cached id belonged to the old name */
    return 0;
}

static PyMethodDef scope_methods[] = {
    {"__reduce__", (PyCFunction)scope_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef scope_getset[] = {
    {"name", (getter)scope_get_name, (setter)scope_set_name, "the event name", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ScopeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "liteprof.Scope", /* its public name: what pickle records (see scope_reduce) */
    .tp_basicsize = sizeof(ScopeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A named scope made once and entered many times; see liteprof.Scope.",
    .tp_new = scope_new,
    .tp_dealloc = (destructor)scope_dealloc,
    .tp_repr = (reprfunc)scope_repr,
    .tp_call = scope_call,
    .tp_weaklistoffset = offsetof(ScopeObject, weakreflist),
    .tp_methods = scope_methods,
    .tp_getset = scope_getset,
};

/* -- module functions -------------------------------------------------------------- */

static PyObject *
mod_start(PyObject *module, PyObject *session)
{
    PyObject *names = PyDict_New();
    if (names == NULL)
        return NULL;
    PyObject *old_session = g_session;
    PyObject *old_names = g_names;
    Py_INCREF(session);
    g_session = session;
    g_names = names;
    g_epoch++;
    clock_start();
    g_on = 1;
    /* Blocks of an earlier session are not this session's to fill. */
    detach_all(NULL, 0);
    Py_XDECREF(old_session);
    Py_XDECREF(old_names);
    Py_RETURN_NONE;
}

static PyObject *
mod_stop(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    PyObject *old_session = g_session;
    g_on = 0;
    g_session = NULL;
    g_epoch++;
    /* The writer closes every mapping as soon as this returns, and mmap.close() fails
     * while a buffer export exists: release every thread's block now. */
    detach_all(NULL, 0);
    Py_XDECREF(old_session);
    PyDict_Clear(g_names);
    Py_RETURN_NONE;
}

static PyObject *
mod_active(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(g_on);
}

static PyObject *
mod_after_fork_child(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    PyObject *names = PyDict_New();
    if (names == NULL)
        return NULL;
    PyObject *old_session = g_session;
    PyObject *old_names = g_names;
    g_on = 0;
    g_session = NULL;
    g_names = names;
    g_epoch++;
    ThreadState *me = t_state;
    /* The other threads do not exist in the child: forget their states (their capsules,
     * if CPython still clears them, free them later) and their blocks. */
    detach_all(me, 1);
    g_bad_name_warned = 0; /* a new process: it warns once of its own */
    if (me != NULL) {
        /* Never write into the parent's mapping: the child gets blocks of its own. The
         * events that waited were the parent's. */
        PyObject *mm = state_detach(me);
        me->epoch = 0;
        me->busy = 0;
        t_in_callback = 0;
        Py_ssize_t n = me->npending;
        me->npending = 0;
        for (Py_ssize_t i = 0; i < n; i++)
            Py_DECREF(me->pending[i].name);
        Py_XDECREF(mm);
    }
    Py_XDECREF(old_session);
    Py_XDECREF(old_names);
    Py_RETURN_NONE;
}

static PyObject *
mod_set_decorator(PyObject *module, PyObject *fn)
{
    PyObject *old = g_decorate;
    if (fn == Py_None) {
        g_decorate = NULL;
    }
    else {
        Py_INCREF(fn);
        g_decorate = fn;
    }
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

static PyObject *
mod_set_clock(PyObject *module, PyObject *clock)
{
    PyObject *old = g_clock;
    if (clock == Py_None) {
        g_clock = NULL;
    }
    else {
        Py_INCREF(clock);
        g_clock = clock;
    }
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

static PyObject *
mod_stats(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t threads = 0;
    for (ThreadState *st = g_states; st != NULL; st = st->next)
        threads++;
    ThreadState *me = t_state;
    Py_ssize_t frames = 0, lanes = 0, pending = 0;
    if (me != NULL) {
        frames = me->lane0.n;
        for (size_t j = 0; j < me->lanes_cap; j++)
            if (me->lanes[j] != NULL)
                frames += me->lanes[j]->n;
        lanes = (Py_ssize_t)me->lanes_n;
        pending = me->npending;
    }
    const char *clock = g_clock != NULL ? "test" : g_tsc ? "tsc" : clock_calibrating() ? "calibrating" : "monotonic";
    return Py_BuildValue("{s:n,s:n,s:n,s:n,s:i,s:K,s:O,s:s}", "threads", threads, "frames",
                         frames, "lanes", lanes, "pending", pending, "freelist", sc_nfree,
                         "epoch", (unsigned long long)g_epoch, "attached",
                         (me != NULL && me->mm != NULL && me->epoch == g_epoch) ? Py_True
                                                                                 : Py_False,
                         "clock", clock);
}

static PyObject *
mod_forget_warnings(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    g_bad_name_warned = 0;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"scope", mod_scope, METH_O,
     "scope(name): a context manager and decorator timing one event named name."},
    {"timed_function", (PyCFunction)(void (*)(void))mod_timed_function, METH_FASTCALL,
     "timed_function(func, name): wrap a synchronous callable; each call is one event."},
    {"start", mod_start, METH_O, "start(session): start recording into session."},
    {"stop", mod_stop, METH_NOARGS, "stop(): stop recording; open frames are dropped."},
    {"active", mod_active, METH_NOARGS, "active(): True while recording."},
    {"after_fork_child", mod_after_fork_child, METH_NOARGS,
     "after_fork_child(): in a forked child, forget the parent's file and frames."},
    {"set_decorator", mod_set_decorator, METH_O,
     "set_decorator(fn): fn(func, name) wraps what Scope/scope() decorate; None resets."},
    {"set_clock", mod_set_clock, METH_O,
     "set_clock(clock): read clock() (int ns) instead of the monotonic clock; None resets."},
    {"_stats", mod_stats, METH_NOARGS, "Tests only: counters of the recorder's state."},
    {"_forget_warnings", mod_forget_warnings, METH_NOARGS,
     "Tests only: warn again of the next bad name, as a new process would."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    "liteprof.record._core",
    "The compiled liteprof recorder: the C twin of liteprof._pyrecorder.",
    -1,
    module_methods,
};

static int
intern_all(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } table[] = {
        {&str_state_key, "liteprof.record._core.state"},
        {&str_thread, "thread"},
        {&str_block, "block"},
        {&str_release, "release"},
        {&str_name_id, "name_id"},
        {&str_get_native_id, "get_native_id"},
        {&str_current_thread, "current_thread"},
        {&str_name, "name"},
        {&str_update_wrapper, "update_wrapper"},
        {&str_qualname, "__qualname__"},
        {&str_asyncio, "asyncio"},
        {&str_events, "events"},
        {&str_get_running_loop, "_get_running_loop"},
        {&str_current_task, "current_task"},
        {&str_greenlet, "greenlet"},
        {&str_getcurrent, "getcurrent"},
        {&str_parent, "parent"},
        {&str_liteprof, "liteprof"},
        {&str_Scope, "Scope"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (*table[i].slot == NULL) {
            *table[i].slot = PyUnicode_InternFromString(table[i].text);
            if (*table[i].slot == NULL)
                return -1;
        }
    }
    return 0;
}

/* Every constant the C core writes is checked against liteprof.log.format at import, so
 * that the two backends cannot drift apart; the block sizes are taken from it. */
static int
read_format_constants(void)
{
    PyObject *fmt = PyImport_ImportModule("liteprof.log.format");
    if (fmt == NULL)
        return -1;
    struct {
        const char *name;
        long long expect; /* -1: read, not checked */
        long long *out;
    } table[] = {
        {"SLOT_SIZE", SLOT, NULL},
        {"KIND_EVENT", KIND_EVENT, NULL},
        {"KIND_LANE", KIND_LANE, NULL},
        {"FLAG_ERROR", FLAG_ERROR, NULL},
        {"DEPTH_SHIFT", DEPTH_SHIFT, NULL},
        {"MAX_DEPTH", MAX_DEPTH, NULL},
        {"MIN_BLOCK", -1, NULL},
        {"MAX_BLOCK", -1, NULL},
    };
    long long values[sizeof(table) / sizeof(table[0])];
    int rc = 0;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]) && rc == 0; i++) {
        PyObject *v = PyObject_GetAttrString(fmt, table[i].name);
        if (v == NULL) {
            rc = -1;
            break;
        }
        values[i] = PyLong_AsLongLong(v);
        Py_DECREF(v);
        if (values[i] == -1 && PyErr_Occurred())
            rc = -1;
        else if (table[i].expect >= 0 && values[i] != table[i].expect) {
            PyErr_Format(PyExc_ImportError,
                         "liteprof.record._core does not match liteprof.log.format: %s is %lld, "
                         "the core writes %lld",
                         table[i].name, values[i], table[i].expect);
            rc = -1;
        }
    }
    Py_DECREF(fmt);
    if (rc < 0)
        return -1;
    long long lo = values[6], hi = values[7];
    if (lo < 2 * SLOT || hi < lo || hi > 0x7FFFFFFF) {
        PyErr_SetString(PyExc_ImportError,
                        "liteprof.record._core: block sizes in liteprof.log.format out of range");
        return -1;
    }
    min_block = (Py_ssize_t)lo;
    max_block = (Py_ssize_t)hi;
    return 0;
}

PyMODINIT_FUNC
PyInit__core(void)
{
    if (intern_all() < 0 || read_format_constants() < 0)
        return NULL;
    if (lp_special_ready() < 0 ||
        PyType_Ready(&NoopType) < 0 || PyType_Ready(&ScopeCallType) < 0 ||
        PyType_Ready(&ScopeType) < 0 || PyType_Ready(&TimedType) < 0)
        return NULL;
    if (g_names == NULL) {
        g_names = PyDict_New();
        if (g_names == NULL)
            return NULL;
    }
    if (g_noop == NULL) {
        g_noop = PyObject_New(PyObject, &NoopType);
        if (g_noop == NULL)
            return NULL;
        if (lp_add_special(&NoopType, "__enter__", noop_enter, g_noop) < 0 ||
            lp_add_special(&NoopType, "__exit__", noop_exit, g_noop) < 0 ||
            lp_add_special(&ScopeCallType, "__enter__", sc_enter, NULL) < 0 ||
            lp_add_special(&ScopeCallType, "__exit__", sc_exit, NULL) < 0 ||
            lp_add_special(&ScopeType, "__enter__", scope_enter, NULL) < 0 ||
            lp_add_special(&ScopeType, "__exit__", scope_exit, NULL) < 0)
            return NULL;
    }
    PyObject *m = PyModule_Create(&core_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(g_noop);
    if (PyModule_AddObject(m, "NOOP", g_noop) < 0) {
        Py_DECREF(g_noop);
        goto error;
    }
    if (PyModule_AddStringConstant(m, "BACKEND", "c") < 0)
        goto error;
    if (lp_writer_add(m) < 0)
        goto error;
    struct {
        const char *name;
        PyTypeObject *type;
    } types[] = {
        {"Scope", &ScopeType},
        {"_ScopeCall", &ScopeCallType},
        {"_Noop", &NoopType},
        {"TimedFunction", &TimedType},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        Py_INCREF(types[i].type);
        if (PyModule_AddObject(m, types[i].name, (PyObject *)types[i].type) < 0) {
            Py_DECREF(types[i].type);
            goto error;
        }
    }
    return m;
error:
    Py_DECREF(m);
    return NULL;
}
