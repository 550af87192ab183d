/* liteprof.record._core: folding a recycled block's events into a bounded log's summary.
 *
 * With LITEPROF_MAX_MB the writer recycles the oldest full block when the file is at its
 * limit; first it adds that block's events to per-name totals and duration histograms
 * (docs/FORMAT.md, "Bounded logs"). This is the loop over the block's slots, the only part
 * of that slow path whose cost grows with the events; liteprof/log/_native.py has the same
 * loop in Python for an install without the C core.
 */
#include "_writer.h"

#include <stdint.h>
#include <string.h>

#define SLOT 32
#define KIND_EVENT 1u
#define KIND_MASK 0xFFu
#define FLAG_ERROR (1u << 8)
/* u64 words of one name's record: count, errors, total (lo, hi), self (lo, hi), min, max,
 * then one count per histogram bucket. */
#define REC_HEAD 8

/* Little-endian loads and stores; memcpy compiles to one move (a byte swap on a
 * big-endian host). */
static inline uint64_t
get_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if PY_BIG_ENDIAN
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint32_t
get_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
#if PY_BIG_ENDIAN
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline void
put_u64(unsigned char *p, uint64_t v)
{
#if PY_BIG_ENDIAN
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

/* word w of a record += v, carrying into word w + 1 (a 128-bit sum in two words) */
static inline void
add_u128(unsigned char *rec, int w, uint64_t v)
{
    uint64_t lo = get_u64(rec + 8 * w);
    uint64_t sum = lo + v;
    put_u64(rec + 8 * w, sum);
    if (sum < lo)
        put_u64(rec + 8 * (w + 1), get_u64(rec + 8 * (w + 1)) + 1);
}

/* _fold(acc, slots, bounds) -> (folded, skipped, first_start, last_end)
 *
 * acc: writable buffer of records, one per name id (little-endian u64 words, REC_HEAD +
 * len(bounds) + 1 each); slots: the slots of one thread block after its header; bounds:
 * the histogram's upper bucket bounds in ns, ascending, native u64 (an array('Q')).
 * Events whose name id has no record, or whose fields are negative, are counted in
 * skipped and not folded. first_start/last_end: the earliest start and latest end of the
 * folded events (monotonic ns), or None when none was folded. */
static PyObject *
fold(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "_fold(acc, slots, bounds) takes 3 arguments");
        return NULL;
    }
    Py_buffer acc, data, bounds;
    if (PyObject_GetBuffer(args[0], &acc, PyBUF_WRITABLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&acc);
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &bounds, PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&acc);
        PyBuffer_Release(&data);
        return NULL;
    }
    PyObject *result = NULL;
    if (bounds.itemsize != 8 || bounds.format == NULL || strcmp(bounds.format, "Q") != 0) {
        PyErr_SetString(PyExc_TypeError, "_fold: bounds must be an array('Q')");
        goto done;
    }
    Py_ssize_t nb = bounds.len / 8 + 1; /* the last bucket has no upper bound */
    Py_ssize_t rec_bytes = 8 * (REC_HEAD + nb);
    Py_ssize_t nnames = acc.len / rec_bytes;
    const uint64_t *bound = (const uint64_t *)bounds.buf;
    const unsigned char *p = (const unsigned char *)data.buf;
    Py_ssize_t nslots = data.len / SLOT;
    unsigned char *base = (unsigned char *)acc.buf;
    long long folded = 0, skipped = 0;
    int64_t first = INT64_MAX, last = INT64_MIN;
    for (Py_ssize_t s = 0; s < nslots; s++, p += SLOT) {
        uint32_t flags = get_u32(p + 28);
        if ((flags & KIND_MASK) != KIND_EVENT)
            continue; /* empty, a lane slot, or an extension: no event to count */
        int64_t start = (int64_t)get_u64(p);
        int64_t dur = (int64_t)get_u64(p + 8);
        int64_t child = (int64_t)get_u64(p + 16);
        uint32_t name = get_u32(p + 24);
        if (start < 0 || dur < 0 || child < 0 || (Py_ssize_t)name >= nnames) {
            skipped++;
            continue;
        }
        unsigned char *rec = base + (Py_ssize_t)name * rec_bytes;
        uint64_t d = (uint64_t)dur;
        uint64_t self = d - ((uint64_t)child < d ? (uint64_t)child : d);
        uint64_t count = get_u64(rec);
        if (count == 0 || d < get_u64(rec + 48))
            put_u64(rec + 48, d);
        if (count == 0 || d > get_u64(rec + 56))
            put_u64(rec + 56, d);
        put_u64(rec, count + 1);
        if (flags & FLAG_ERROR)
            put_u64(rec + 8, get_u64(rec + 8) + 1);
        add_u128(rec, 2, d);
        add_u128(rec, 4, self);
        Py_ssize_t lo = 0, hi = nb - 1; /* first bucket whose bound is >= d */
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (d <= bound[mid])
                hi = mid;
            else
                lo = mid + 1;
        }
        unsigned char *b = rec + 8 * (REC_HEAD + lo);
        put_u64(b, get_u64(b) + 1);
        if (start < first)
            first = start;
        int64_t end = start + (dur < INT64_MAX - start ? dur : INT64_MAX - start);
        if (end > last)
            last = end;
        folded++;
    }
    if (folded)
        result = Py_BuildValue("(LLLL)", folded, skipped, (long long)first, (long long)last);
    else
        result = Py_BuildValue("(LLOO)", folded, skipped, Py_None, Py_None);
done:
    PyBuffer_Release(&acc);
    PyBuffer_Release(&data);
    PyBuffer_Release(&bounds);
    return result;
}

PyMethodDef lp_fold_methods[] = {
    {"_fold", (PyCFunction)(void (*)(void))fold, METH_FASTCALL,
     "_fold(acc, slots, bounds) -> (folded, skipped, first_start, last_end): add the events "
     "of one block's slots to per-name records."},
    {NULL, NULL, 0, NULL},
};
