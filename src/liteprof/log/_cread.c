/* liteprof.log._cread: the reader's two loops over every event, in C.
 *
 * liteprof/log/reader.py reads a log's slots block by block and cuts them into numpy
 * columns, then links each event to its parent. Vectorised numpy does each in several
 * passes over the data; here each is one pass:
 *
 *   cut(slots, start, dur, self_ns, name, depth, error, lane, lane_now, anchor)
 *       the event slots among `slots` (a buffer of whole 32-byte slots) into the output
 *       buffers (room for as many items as there are slots), as docs/FORMAT.md says:
 *       kind 1 is an event, kind 2 sets the lane (raw 64-bit id) of the events after it,
 *       kinds 3-127 are reserved (counted), 128-255 optional (ignored); an event with a
 *       negative start, duration or child time is damage (counted, not kept). `start`
 *       gets monotonic start + `anchor` (saturating), `self_ns` dur - min(child, dur).
 *       Returns (events, reserved, damaged, lanes_seen, lane_now, first_start, last_end):
 *       the span on the monotonic clock, (-1, -1) without events.
 *
 *   link(depth, start, dur, stream, order, parent, base)
 *       parent[...] of every row: the first later row of the same stream (rows of equal
 *       `stream` values are contiguous; None: one stream) at depth - 1 that contains it in
 *       time, within 1 us of slack; -1 for none. With `order` (the rows were permuted to
 *       make streams contiguous), row i is original row order[i]; `parent` is indexed
 *       by original rows and holds original rows + base.
 *
 *   sums(key, values, out)
 *       exact per-key sums of int64 `values` (n items) by `key` (n items of 4 or 8 bytes,
 *       each in [0, K)), into `out` (2K int64): out[2k] the sum of the high words
 *       (value >> 32), out[2k + 1] that of the low words (value & 0xFFFFFFFF), so that
 *       sum = high * 2**32 + low exactly, whatever the values (at most 2**31 of them).
 *
 *   select(key, values, counts, ranks, out, scratch)
 *       order statistics per key without sorting: `counts` (K int64) is how many items
 *       each key has; `ranks` (P x R int64, P the keys with items, in key order) the
 *       ranks wanted of each (ascending, in [0, count)); `out` (P x R) gets the value of
 *       that rank among the key's values (the item at that index if they were sorted).
 *       The values are moved by key into `scratch` (room for n int64: the caller's
 *       numpy array, whose huge pages fault far less often than a malloc's small
 *       ones), as a counting sort would move them, then
 *       each key's ranks are found by quickselect (Hoare partitions; the middle rank
 *       first, then each side), O(n) where a sort is O(n log n).
 *
 *   select_few(key, values, counts, ranks, out)
 *       what select() gives, for a few keys (at most 16) and without moving any value:
 *       a radix selection. The values less their minimum are read as 12-bit digits, the
 *       highest first; one read-only pass per digit counts, per key and per wanted rank
 *       whose higher digits are known, how many values have each digit, and the count
 *       tells the rank's digit. Logs' durations span under 2**36 ns: three passes.
 *
 *   count(key, out)
 *       how many items each key in [0, K) has (`out`, K int64): numpy's bincount
 *       without its copy of the keys as 64-bit integers.
 *
 * The analysis (analysis/stats.py) uses the last four for its grouped statistics, with a
 * sort in numpy where this module is not built: the same numbers.
 *
 * No numpy headers: arguments are buffers (numpy arrays support the protocol), checked for
 * item size, length and contiguity. reader.py has the same loops in numpy for an install
 * without a compiler; the tests run both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define SLOT 32
#define NESTING_SLACK_NS 1000

typedef struct {
    Py_buffer view;
    int held;
} Buf;

static void
release(Buf *b, int n)
{
    for (int i = 0; i < n; i++)
        if (b[i].held)
            PyBuffer_Release(&b[i].view);
}

/* Get a contiguous buffer of at least `count` items of `itemsize` bytes (count < 0: any
 * number; itemsize 0: any item size, the length in bytes counts). */
static int
get(PyObject *obj, Buf *b, Py_ssize_t itemsize, Py_ssize_t count, int writable,
    const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0)
        return -1;
    b->held = 1;
    if (itemsize > 0 && b->view.itemsize != itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: items of %zd bytes expected, not %zd", what,
                     itemsize, b->view.itemsize);
        return -1;
    }
    if (count >= 0 && b->view.len < count * (itemsize > 0 ? itemsize : 1)) {
        PyErr_Format(PyExc_ValueError, "%s: room for %zd items expected", what, count);
        return -1;
    }
    return 0;
}

static PyObject *
cread_cut(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "cut() takes 10 arguments");
        return NULL;
    }
    Buf b[8];
    memset(b, 0, sizeof(b));
    unsigned long long lane_now = PyLong_AsUnsignedLongLong(args[8]);
    long long anchor = PyLong_AsLongLong(args[9]);
    if (PyErr_Occurred())
        return NULL;
    if (get(args[0], &b[0], 0, -1, 0, "slots") < 0)
        goto fail;
    Py_ssize_t n = b[0].view.len / SLOT;
    if (get(args[1], &b[1], 8, n, 1, "start") < 0 || get(args[2], &b[2], 8, n, 1, "dur") < 0 ||
        get(args[3], &b[3], 8, n, 1, "self_ns") < 0 || get(args[4], &b[4], 4, n, 1, "name") < 0 ||
        get(args[5], &b[5], 4, n, 1, "depth") < 0 || get(args[6], &b[6], 1, n, 1, "error") < 0 ||
        get(args[7], &b[7], 8, n, 1, "lane") < 0)
        goto fail;

    const unsigned char *p = (const unsigned char *)b[0].view.buf;
    int64_t *start = (int64_t *)b[1].view.buf, *dur = (int64_t *)b[2].view.buf;
    int64_t *self_ns = (int64_t *)b[3].view.buf;
    uint32_t *name = (uint32_t *)b[4].view.buf;
    int32_t *depth = (int32_t *)b[5].view.buf;
    unsigned char *error = (unsigned char *)b[6].view.buf;
    uint64_t *lane = (uint64_t *)b[7].view.buf;
    Py_ssize_t k = 0, reserved = 0, damaged = 0;
    int lanes_seen = 0;
    int64_t first = INT64_MAX, last = INT64_MIN;
    for (Py_ssize_t i = 0; i < n; i++, p += SLOT) {
        uint32_t flags;
        memcpy(&flags, p + 28, 4);
        uint32_t kind = flags & 0xFFu;
        if (kind == 1) {
            int64_t s, d, c;
            memcpy(&s, p, 8);
            memcpy(&d, p + 8, 8);
            memcpy(&c, p + 16, 8);
            if (s < 0 || d < 0 || c < 0) {
                damaged++;
                continue;
            }
            /* start + dur, without overflow: forged durations near 2**63 saturate */
            int64_t end = d > INT64_MAX - s ? INT64_MAX : s + d;
            if (s < first)
                first = s;
            if (end > last)
                last = end;
            if (anchor > 0 && s > INT64_MAX - anchor)
                start[k] = INT64_MAX;
            else
                start[k] = s + anchor;
            dur[k] = d;
            self_ns[k] = d - (c < d ? c : d);
            memcpy(&name[k], p + 24, 4);
            depth[k] = (int32_t)(flags >> 16);
            error[k] = (unsigned char)((flags >> 8) & 1u);
            lane[k] = lane_now;
            k++;
        }
        else if (kind == 2) {
            uint64_t id;
            memcpy(&id, p, 8);
            lane_now = id;
            lanes_seen = 1;
        }
        else if (kind > 2 && kind < 128) {
            reserved++;
        }
    }
    release(b, 8);
    if (k == 0)
        first = last = -1;
    return Py_BuildValue("(nnniKLL)", k, reserved, damaged, lanes_seen,
                         (unsigned long long)lane_now, (long long)first, (long long)last);
fail:
    release(b, 8);
    return NULL;
}

/* Whether the event at (sp, dp) contains the one at (sk, dk), within the slack. */
static inline int
contains(int64_t sp, int64_t dp, int64_t sk, int64_t dk)
{
#ifdef __SIZEOF_INT128__
    __int128 lo = (__int128)sp, hi = (__int128)sp + dp;
    return lo <= (__int128)sk + NESTING_SLACK_NS &&
           hi + NESTING_SLACK_NS >= (__int128)sk + dk;
#else
    long double lo = (long double)sp, hi = (long double)sp + (long double)dp;
    return lo <= (long double)sk + NESTING_SLACK_NS &&
           hi + NESTING_SLACK_NS >= (long double)sk + (long double)dk;
#endif
}

static PyObject *
cread_link(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "link() takes 7 arguments");
        return NULL;
    }
    Buf b[6];
    memset(b, 0, sizeof(b));
    long long base = PyLong_AsLongLong(args[6]);
    if (PyErr_Occurred())
        return NULL;
    if (get(args[0], &b[0], 4, -1, 0, "depth") < 0)
        goto fail;
    Py_ssize_t n = b[0].view.len / 4;
    if (get(args[1], &b[1], 8, n, 0, "start") < 0 || get(args[2], &b[2], 8, n, 0, "dur") < 0 ||
        get(args[5], &b[5], 8, n, 1, "parent") < 0)
        goto fail;
    Py_ssize_t stream_size = 0;
    if (args[3] != Py_None) {
        if (PyObject_GetBuffer(args[3], &b[3].view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            goto fail;
        b[3].held = 1;
        stream_size = b[3].view.itemsize;
        if ((stream_size != 4 && stream_size != 8) || b[3].view.len < n * stream_size) {
            PyErr_SetString(PyExc_ValueError, "stream: n items of 4 or 8 bytes expected");
            goto fail;
        }
    }
    if (args[4] != Py_None && get(args[4], &b[4], 8, n, 0, "order") < 0)
        goto fail;

    const int32_t *depth = (const int32_t *)b[0].view.buf;
    const int64_t *start = (const int64_t *)b[1].view.buf, *dur = (const int64_t *)b[2].view.buf;
    const int64_t *order = b[4].held ? (const int64_t *)b[4].view.buf : NULL;
    int64_t *parent = (int64_t *)b[5].view.buf;
    /* Per depth, the nearest later row of the current stream at that depth: valid where
     * its epoch is the current stream's (so a new stream clears the table in O(1)). */
    int64_t *next_row = PyMem_Malloc(65536 * sizeof(int64_t));
    uint64_t *epoch_of = PyMem_Calloc(65536, sizeof(uint64_t));
    if (next_row == NULL || epoch_of == NULL) {
        PyMem_Free(next_row);
        PyMem_Free(epoch_of);
        PyErr_NoMemory();
        goto fail;
    }
    uint64_t epoch = 1;
    int64_t prev_stream = 0;
    const unsigned char *stream = (const unsigned char *)b[3].view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        if (stream_size) {
            int64_t s;
            if (stream_size == 8) {
                memcpy(&s, stream + 8 * i, 8);
            }
            else {
                int32_t s32;
                memcpy(&s32, stream + 4 * i, 4);
                s = s32;
            }
            if (i == n - 1 || s != prev_stream) {
                epoch++;
                prev_stream = s;
            }
        }
        uint32_t d = (uint32_t)depth[i] & 0xFFFFu;
        int64_t found = -1;
        if (d > 0 && epoch_of[d - 1] == epoch) {
            int64_t j = next_row[d - 1];
            if (contains(start[j], dur[j], start[i], dur[i]))
                found = (order ? order[j] : j) + base;
        }
        parent[order ? order[i] : i] = found;
        epoch_of[d] = epoch;
        next_row[d] = i;
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(next_row);
    PyMem_Free(epoch_of);
    release(b, 6);
    Py_RETURN_NONE;
fail:
    release(b, 6);
    return NULL;
}

/* Get a key buffer of n items of 4 or 8 bytes. */
static int
get_keys(PyObject *obj, Buf *b, Py_ssize_t n)
{
    if (PyObject_GetBuffer(obj, &b->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    b->held = 1;
    Py_ssize_t size = b->view.itemsize;
    if ((size != 4 && size != 8) || b->view.len != n * size) {
        PyErr_SetString(PyExc_ValueError, "key: as many items of 4 or 8 bytes as values");
        return -1;
    }
    return 0;
}

static inline int64_t
key_at(const void *keys, Py_ssize_t size, Py_ssize_t i)
{
    if (size == 8) {
        int64_t k;
        memcpy(&k, (const char *)keys + 8 * i, 8);
        return k;
    }
    int32_t k;
    memcpy(&k, (const char *)keys + 4 * i, 4);
    return k;
}

static PyObject *
cread_sums(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "sums() takes 3 arguments");
        return NULL;
    }
    Buf b[3];
    memset(b, 0, sizeof(b));
    if (get(args[1], &b[1], 8, -1, 0, "values") < 0)
        goto fail;
    Py_ssize_t n = b[1].view.len / 8;
    if (get_keys(args[0], &b[0], n) < 0 || get(args[2], &b[2], 8, -1, 1, "out") < 0)
        goto fail;
    if ((uint64_t)n > ((uint64_t)1 << 31)) {
        /* so that neither word's sum can leave an int64 */
        PyErr_SetString(PyExc_ValueError, "sums: at most 2**31 values");
        goto fail;
    }
    Py_ssize_t n_keys = b[2].view.len / 16, size = b[0].view.itemsize;
    const void *keys = b[0].view.buf;
    const int64_t *values = (const int64_t *)b[1].view.buf;
    int64_t *out = (int64_t *)b[2].view.buf;
    Py_ssize_t bad = -1;
    Py_BEGIN_ALLOW_THREADS
    memset(out, 0, (size_t)n_keys * 16);
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t k = key_at(keys, size, i);
        if (k < 0 || k >= n_keys) {
            bad = i;
            break;
        }
        int64_t v = values[i];
        /* the arithmetic shift of a negative value, without relying on one */
        out[2 * k] += v >= 0 ? v >> 32 : -(int64_t)((~(uint64_t)v) >> 32) - 1;
        out[2 * k + 1] += (int64_t)((uint64_t)v & 0xFFFFFFFFu);
    }
    Py_END_ALLOW_THREADS
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "sums: key of item %zd out of range", bad);
        goto fail;
    }
    release(b, 3);
    Py_RETURN_NONE;
fail:
    release(b, 3);
    return NULL;
}

static int
cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* Put the k-th smallest of a[lo..hi] at a[k], the smaller ones before it and the larger
 * after (Hoare's partition around the median of three, as in Wirth's "Find"). Past a
 * budget of rounds (only a hostile order gets there), the range is sorted instead. */
static void
quickselect(int64_t *a, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t k)
{
    int budget = 128;
    while (lo < hi) {
        if (--budget < 0) {
            qsort(a + lo, (size_t)(hi - lo + 1), sizeof(int64_t), cmp_i64);
            return;
        }
        int64_t x0 = a[lo], x1 = a[lo + (hi - lo) / 2], x2 = a[hi], x;
        if (x0 < x1)
            x = x1 < x2 ? x1 : (x0 < x2 ? x2 : x0);
        else
            x = x0 < x2 ? x0 : (x1 < x2 ? x2 : x1);
        Py_ssize_t i = lo, j = hi;
        do {
            while (a[i] < x)
                i++;
            while (x < a[j])
                j--;
            if (i <= j) {
                int64_t t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        } while (i <= j);
        if (j < k)
            lo = i;
        if (k < i)
            hi = j;
    }
}

/* Every rank of r[rlo..rhi] (ascending) in place within a[lo..hi]: the middle one first,
 * which splits both the range and the ranks in two. An extreme rank is a scan. */
static void
multiselect(int64_t *a, Py_ssize_t lo, Py_ssize_t hi, const int64_t *r, Py_ssize_t rlo,
            Py_ssize_t rhi)
{
    while (rlo <= rhi && r[rlo] < lo)
        rlo++;
    while (rlo <= rhi && r[rhi] > hi)
        rhi--;
    if (rlo > rhi || lo >= hi)
        return;
    Py_ssize_t mid = rlo + (rhi - rlo) / 2, k = (Py_ssize_t)r[mid];
    if (k == lo || k == hi) {
        Py_ssize_t best = lo;
        for (Py_ssize_t i = lo + 1; i <= hi; i++)
            if (k == lo ? a[i] < a[best] : a[i] > a[best])
                best = i;
        if (k == hi && best != hi) {
            /* keep the rest a permutation; the maximum goes last */
            int64_t t = a[best];
            a[best] = a[hi];
            a[hi] = t;
        }
        else if (k == lo && best != lo) {
            int64_t t = a[best];
            a[best] = a[lo];
            a[lo] = t;
        }
    }
    else {
        quickselect(a, lo, hi, k);
    }
    multiselect(a, lo, k - 1, r, rlo, mid - 1);
    multiselect(a, k + 1, hi, r, mid + 1, rhi);
}

static PyObject *
cread_select(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "select() takes 6 arguments");
        return NULL;
    }
    Buf b[6];
    memset(b, 0, sizeof(b));
    if (get(args[1], &b[1], 8, -1, 0, "values") < 0)
        goto fail;
    Py_ssize_t n = b[1].view.len / 8;
    if (get_keys(args[0], &b[0], n) < 0 || get(args[2], &b[2], 8, -1, 0, "counts") < 0 ||
        get(args[3], &b[3], 8, -1, 0, "ranks") < 0 || get(args[4], &b[4], 8, -1, 1, "out") < 0 ||
        get(args[5], &b[5], 8, n, 1, "scratch") < 0)
        goto fail;
    Py_ssize_t n_keys = b[2].view.len / 8, size = b[0].view.itemsize;
    const int64_t *counts = (const int64_t *)b[2].view.buf;
    const int64_t *ranks = (const int64_t *)b[3].view.buf;
    int64_t *out = (int64_t *)b[4].view.buf;
    Py_ssize_t present = 0, total = 0;
    for (Py_ssize_t k = 0; k < n_keys; k++) {
        if (counts[k] < 0 || counts[k] > n - total) {
            PyErr_SetString(PyExc_ValueError, "select: counts do not add up to the values");
            goto fail;
        }
        total += counts[k];
        present += counts[k] > 0;
    }
    if (total != n || present == 0 || b[3].view.len % (present * 8) != 0 ||
        b[4].view.len < b[3].view.len) {
        PyErr_SetString(PyExc_ValueError, "select: counts, ranks or out do not fit");
        goto fail;
    }
    Py_ssize_t n_ranks = b[3].view.len / (present * 8);
    for (Py_ssize_t g = 0, k = 0; k < n_keys; k++) {
        if (counts[k] == 0)
            continue;
        for (Py_ssize_t j = 0; j < n_ranks; j++) {
            int64_t r = ranks[g * n_ranks + j];
            if (r < 0 || r >= counts[k] || (j && r < ranks[g * n_ranks + j - 1])) {
                PyErr_SetString(PyExc_ValueError, "select: ranks out of order or range");
                goto fail;
            }
        }
        g++;
    }
    int64_t *buf = (int64_t *)b[5].view.buf;
    Py_ssize_t *at = PyMem_RawMalloc((size_t)n_keys * 2 * sizeof(Py_ssize_t));
    if (at == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    const void *keys = b[0].view.buf;
    const int64_t *values = (const int64_t *)b[1].view.buf;
    Py_ssize_t bad = -1;
    Py_BEGIN_ALLOW_THREADS
    /* at[k]: where key k's next item goes; end[k]: the end of its room */
    Py_ssize_t off = 0, *end = at + n_keys;
    for (Py_ssize_t k = 0; k < n_keys; k++) {
        at[k] = off;
        off += (Py_ssize_t)counts[k];
        end[k] = off;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t k = key_at(keys, size, i);
        if (k < 0 || k >= n_keys || at[k] >= end[k]) {
            bad = i;
            break;
        }
        buf[at[k]++] = values[i];
    }
    if (bad < 0) {
        /* at[k] is now the end of key k's items */
        for (Py_ssize_t g = 0, k = 0; k < n_keys; k++) {
            Py_ssize_t c = (Py_ssize_t)counts[k];
            if (c == 0)
                continue;
            int64_t *seg = buf + at[k] - c;
            const int64_t *r = ranks + g * n_ranks;
            multiselect(seg, 0, c - 1, r, 0, n_ranks - 1);
            for (Py_ssize_t j = 0; j < n_ranks; j++)
                out[g * n_ranks + j] = seg[r[j]];
            g++;
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(at);
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "select: key of item %zd out of range or miscounted",
                     bad);
        goto fail;
    }
    release(b, 6);
    Py_RETURN_NONE;
fail:
    release(b, 6);
    return NULL;
}

#define DIGIT_BITS 12
#define DIGITS (1 << DIGIT_BITS)
#define FEW_KEYS 16

static PyObject *
cread_select_few(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "select_few() takes 5 arguments");
        return NULL;
    }
    Buf b[5];
    memset(b, 0, sizeof(b));
    uint32_t *hist = NULL;
    if (get(args[1], &b[1], 8, -1, 0, "values") < 0)
        goto fail;
    Py_ssize_t n = b[1].view.len / 8;
    if (get_keys(args[0], &b[0], n) < 0 || get(args[2], &b[2], 8, -1, 0, "counts") < 0 ||
        get(args[3], &b[3], 8, -1, 0, "ranks") < 0 || get(args[4], &b[4], 8, -1, 1, "out") < 0)
        goto fail;
    Py_ssize_t n_keys = b[2].view.len / 8, size = b[0].view.itemsize;
    const int64_t *counts = (const int64_t *)b[2].view.buf;
    const int64_t *ranks = (const int64_t *)b[3].view.buf;
    int64_t *out = (int64_t *)b[4].view.buf;
    Py_ssize_t present = 0, total = 0;
    int group_of_key[FEW_KEYS];
    for (Py_ssize_t k = 0; k < n_keys && k < FEW_KEYS; k++) {
        if (counts[k] < 0 || counts[k] > n - total)
            break;
        group_of_key[k] = counts[k] > 0 ? (int)present++ : -1;
        total += counts[k];
    }
    if (n_keys > FEW_KEYS || (uint64_t)n >= ((uint64_t)1 << 32) || total != n || present == 0 ||
        b[3].view.len % (present * 8) != 0 || b[4].view.len < b[3].view.len ||
        b[3].view.len / 8 > FEW_KEYS * 64) {
        PyErr_SetString(PyExc_ValueError, "select_few: keys, counts, ranks or out do not fit");
        goto fail;
    }
    Py_ssize_t n_ranks = b[3].view.len / (present * 8), n_slots = present * n_ranks;
    for (Py_ssize_t k = 0; k < n_keys; k++) {
        int g = group_of_key[k];
        for (Py_ssize_t j = 0; g >= 0 && j < n_ranks; j++) {
            int64_t r = ranks[g * n_ranks + j];
            if (r < 0 || r >= counts[k] || (j && r < ranks[g * n_ranks + j - 1])) {
                PyErr_SetString(PyExc_ValueError, "select_few: ranks out of order or range");
                goto fail;
            }
        }
    }
    hist = PyMem_RawMalloc((size_t)n_slots * DIGITS * sizeof(uint32_t));
    /* per wanted rank: the digits known so far and the rank among the values having them */
    uint64_t *prefix = PyMem_RawCalloc((size_t)n_slots, sizeof(uint64_t));
    int64_t *rest = PyMem_RawMalloc((size_t)n_slots * sizeof(int64_t));
    int *slot_of = PyMem_RawMalloc((size_t)n_slots * sizeof(int));
    if (hist == NULL || prefix == NULL || rest == NULL || slot_of == NULL) {
        PyMem_RawFree(prefix);
        PyMem_RawFree(rest);
        PyMem_RawFree(slot_of);
        PyErr_NoMemory();
        goto fail;
    }
    memcpy(rest, ranks, (size_t)n_slots * sizeof(int64_t));
    const void *keys = b[0].view.buf;
    const int64_t *values = (const int64_t *)b[1].view.buf;
    Py_ssize_t bad = -1;
    Py_BEGIN_ALLOW_THREADS
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t v = values[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    uint64_t span = (uint64_t)hi - (uint64_t)lo;
    int levels = 1;
    while (levels * DIGIT_BITS < 64 && (span >> (levels * DIGIT_BITS)) != 0)
        levels++;
    /* Per key, its distinct (prefix) histograms at this level: slot_first[g] .. */
    int first_slot[FEW_KEYS + 1];
    uint64_t slot_prefix[FEW_KEYS * 64];
    for (int level = levels - 1; level >= 0 && bad < 0; level--) {
        int shift = level * DIGIT_BITS;
        /* the wanted ranks of a key in ascending order have non-decreasing prefixes: equal
         * neighbours share a histogram */
        int used = 0;
        for (Py_ssize_t g = 0; g < present; g++) {
            first_slot[g] = used;
            for (Py_ssize_t j = 0; j < n_ranks; j++) {
                Py_ssize_t t = g * n_ranks + j;
                if (used == first_slot[g] || slot_prefix[used - 1] != prefix[t]) {
                    if (used >= FEW_KEYS * 64) {
                        bad = 0;
                        break;
                    }
                    slot_prefix[used++] = prefix[t];
                }
                slot_of[t] = used - 1;
            }
        }
        first_slot[present] = used;
        if (bad >= 0)
            break;
        memset(hist, 0, (size_t)used * DIGITS * sizeof(uint32_t));
        int top = shift + DIGIT_BITS;
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t k = key_at(keys, size, i);
            if (k < 0 || k >= n_keys || group_of_key[k] < 0) {
                bad = i;
                break;
            }
            uint64_t u = (uint64_t)values[i] - (uint64_t)lo;
            uint64_t p = top >= 64 ? 0 : u >> top;
            int g = group_of_key[k];
            for (int t = first_slot[g]; t < first_slot[g + 1]; t++) {
                if (slot_prefix[t] == p) {
                    hist[(size_t)t * DIGITS + ((u >> shift) & (DIGITS - 1))]++;
                    break;
                }
            }
        }
        if (bad >= 0)
            break;
        for (Py_ssize_t t = 0; t < n_slots; t++) {
            const uint32_t *h = hist + (size_t)slot_of[t] * DIGITS;
            int64_t r = rest[t];
            int d = 0;
            while (d < DIGITS - 1 && r >= (int64_t)h[d])
                r -= h[d++];
            rest[t] = r;
            prefix[t] = (prefix[t] << DIGIT_BITS) | (uint64_t)d;
        }
    }
    if (bad < 0)
        for (Py_ssize_t t = 0; t < n_slots; t++)
            out[t] = (int64_t)((uint64_t)lo + prefix[t]);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(prefix);
    PyMem_RawFree(rest);
    PyMem_RawFree(slot_of);
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "select_few: key of item %zd out of range", bad);
        goto fail;
    }
    PyMem_RawFree(hist);
    release(b, 5);
    Py_RETURN_NONE;
fail:
    PyMem_RawFree(hist);
    release(b, 5);
    return NULL;
}

static PyObject *
cread_count(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "count() takes 2 arguments");
        return NULL;
    }
    Buf b[2];
    memset(b, 0, sizeof(b));
    if (PyObject_GetBuffer(args[0], &b[0].view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    b[0].held = 1;
    Py_ssize_t size = b[0].view.itemsize;
    if ((size != 4 && size != 8) || b[0].view.len % size != 0) {
        PyErr_SetString(PyExc_ValueError, "key: items of 4 or 8 bytes expected");
        goto fail;
    }
    if (get(args[1], &b[1], 8, -1, 1, "out") < 0)
        goto fail;
    Py_ssize_t n = b[0].view.len / size, n_keys = b[1].view.len / 8, bad = -1;
    const void *keys = b[0].view.buf;
    int64_t *out = (int64_t *)b[1].view.buf;
    Py_BEGIN_ALLOW_THREADS
    memset(out, 0, (size_t)n_keys * 8);
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t k = key_at(keys, size, i);
        if (k < 0 || k >= n_keys) {
            bad = i;
            break;
        }
        out[k]++;
    }
    Py_END_ALLOW_THREADS
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "count: key of item %zd out of range", bad);
        goto fail;
    }
    release(b, 2);
    Py_RETURN_NONE;
fail:
    release(b, 2);
    return NULL;
}

static PyMethodDef methods[] = {
    {"cut", (PyCFunction)(void (*)(void))cread_cut, METH_FASTCALL,
     "Cut a chunk's event slots into columns (see the module's source comment)."},
    {"link", (PyCFunction)(void (*)(void))cread_link, METH_FASTCALL,
     "Link each row to its parent (see the module's source comment)."},
    {"sums", (PyCFunction)(void (*)(void))cread_sums, METH_FASTCALL,
     "Exact sums per key, as high and low words (see the module's source comment)."},
    {"select", (PyCFunction)(void (*)(void))cread_select, METH_FASTCALL,
     "Order statistics per key by quickselect (see the module's source comment)."},
    {"select_few", (PyCFunction)(void (*)(void))cread_select_few, METH_FASTCALL,
     "Order statistics of a few keys by radix selection (see the module's source comment)."},
    {"count", (PyCFunction)(void (*)(void))cread_count, METH_FASTCALL,
     "Items per key (see the module's source comment)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_cread", "The reader's loops over every event, in C.", 0, methods,
};

PyMODINIT_FUNC
PyInit__cread(void)
{
    return PyModule_Create(&module_def);
}
