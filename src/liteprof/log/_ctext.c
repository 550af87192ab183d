/* liteprof.log._ctext: the text reader's loop over the lines of a vLLM text log, in C.
 *
 * liteprof/log/text.py reads a text log in chunks of whole lines. For a chunk whose
 * every line has the usual form, this is one pass over its bytes instead of numpy's
 * many:
 *
 *   lines(data, n, ids, values, max_names)
 *       the lines of data[0:n] (lines end at "\n"; the last may have no line end).
 *       Every line must be empty (a blank line: ignored) or `name|digits` with 1 to 18
 *       ASCII digits after the line's last "|" and nothing after them; the chunk must hold
 *       no "\r" and no NUL (text.py checks those first, with memchr). For line k (blank
 *       lines not counted), ids[k] gets the index of its name among the chunk's distinct
 *       names (numbered in the order they first occur) and values[k] its value.
 *       Returns (lines, line_bytes, names): the lines read, their bytes (line ends not
 *       counted) and the distinct names as bytes, in order. Returns None, having decided
 *       nothing, for a chunk with any other line or with more than `max_names` distinct
 *       names: text.py then reads it with numpy, which takes every case (whitespace,
 *       Unicode digits, damage).
 *
 * Names are kept as bytes: decoding, stripping the whitespace before a name and
 * interning stay in text.py, once per distinct name. No numpy headers: arguments are
 * buffers (bytearray, numpy arrays), checked for item size, length and contiguity.
 * text.py reads every chunk with numpy where this is not built; the tests run both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define MAX_DIGITS 18 /* 10**18 - 1 < 2**63: no overflow check needed */

typedef struct {
    Py_ssize_t at; /* offset of the name in data; -1: an empty slot */
    Py_ssize_t len;
    uint64_t first, last; /* the name's first and last 8 bytes (see `words`) */
    int32_t index;
} Slot;

/* A name's first and last 8 bytes as words (they overlap for names under 16 bytes, and
 * cover the whole name up to 16); a name under 8 bytes is one word, zeros after it.
 * `limit` is the end of the buffer: a word read never passes it. */
static void
words(const unsigned char *s, Py_ssize_t len, const unsigned char *limit, uint64_t *first,
      uint64_t *last)
{
    if (len >= 8) {
        memcpy(first, s, 8);
        memcpy(last, s + len - 8, 8);
        return;
    }
    uint64_t w = 0;
    if (limit - s >= 8) {
        memcpy(&w, s, 8);
        w &= len ? (~(uint64_t)0 >> (8 * (8 - len))) : 0;
    } else {
        memcpy(&w, s, (size_t)len);
    }
    *first = *last = w;
}

static uint64_t
hash_words(uint64_t first, uint64_t last, Py_ssize_t len)
{
    uint64_t h = (first * 0x9E3779B97F4A7C15ULL) ^ (last * 0xBF58476D1CE4E5B9ULL) ^
                 ((uint64_t)len * 0x94D049BB133111EBULL);
    return h ^ (h >> 29);
}

static int
get(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, int writable, const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    if (itemsize > 0 && view->itemsize != itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: items of %zd bytes expected, not %zd", what,
                     itemsize, view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Read the lines; returns the number read, -1 to give the chunk to numpy, -2 on
 * MemoryError. */
/* Eight ASCII digits, the first in the low byte, as a number (simdjson's
 * parse_eight_digits_unrolled). */
static uint64_t
eight_digits(uint64_t w)
{
    w -= 0x3030303030303030ULL;
    w = (w * 10) + (w >> 8);
    w = (((w & 0x000000FF000000FFULL) * 0x000F424000000064ULL) +
         (((w >> 16) & 0x000000FF000000FFULL) * 0x0000271000000001ULL)) >> 32;
    return w;
}

/* The 8 bytes ending at `e` with the `k` before the last `keep` made "0" digits. */
static uint64_t
digits_word(const unsigned char *e, Py_ssize_t keep)
{
    uint64_t w;
    memcpy(&w, e - 8, 8);
    if (keep < 8) {
        uint64_t low = ~(uint64_t)0 >> (8 * keep); /* the bytes before the value */
        w = (w & ~low) | (0x3030303030303030ULL & low);
    }
    return w;
}

/* Of the 8 bytes of `w`, how many at its top (the last bytes in memory) are ASCII
 * digits. A byte of 0xFA or more carries into the byte after it, which may then count as
 * no digit: fewer digits, never more, so such a line is merely handed to numpy. */
static Py_ssize_t
top_digits(uint64_t w)
{
    uint64_t f = ((w & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL) |
                 (((w + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) ^
                  0x3030303030303030ULL);
    if (f == 0)
        return 8;
#if defined(__GNUC__) || defined(__clang__)
    return (Py_ssize_t)(__builtin_clzll(f) >> 3);
#else
    Py_ssize_t n = 0;
    while (!(f & 0xF000000000000000ULL)) {
        f <<= 8;
        n++;
    }
    return n;
#endif
}

/* How many ASCII digits end the line [p, e): eight bytes at a time where they are in
 * the buffer, else byte by byte. */
static Py_ssize_t
count_digits(const unsigned char *data, const unsigned char *p, const unsigned char *e)
{
    Py_ssize_t n = 0;
    while (e - n - data >= 8) {
        uint64_t w;
        memcpy(&w, e - n - 8, 8);
        Py_ssize_t k = top_digits(w);
        n += k;
        if (k < 8 || n > MAX_DIGITS)
            break;
    }
    if (e - n - data < 8) { /* the buffer's first bytes: one at a time */
        while (e - n > data && (unsigned)(e[-n - 1] - '0') < 10u)
            n++;
    }
    return n > e - p ? e - p : n;
}

/* The value of the `digits` (1 to 18) ASCII digits [q, e): whole words where the bytes
 * before them are in the buffer (they are read and masked off), else digit by digit. */
static int64_t
value(const unsigned char *data, const unsigned char *q, const unsigned char *e,
      Py_ssize_t digits)
{
    if (digits <= 8 && e - data >= 8)
        return (int64_t)eight_digits(digits_word(e, digits));
    if (digits <= 16 && e - data >= 16)
        return (int64_t)(eight_digits(digits_word(e - 8, digits - 8)) * 100000000ULL +
                         eight_digits(digits_word(e, 8)));
    int64_t v = 0;
    for (const unsigned char *r = q; r < e; r++)
        v = v * 10 + (int64_t)(*r - '0');
    return v;
}

static Py_ssize_t
read_lines(const unsigned char *data, Py_ssize_t n, const unsigned char *limit, int32_t *ids,
           int64_t *values, Py_ssize_t room, Slot **slots_out, Py_ssize_t *cap_out,
           Py_ssize_t *names_out, Py_ssize_t max_names, Py_ssize_t *bytes_out)
{
    Py_ssize_t cap = 64, names = 0, k = 0, line_bytes = 0;
    Slot *slots = PyMem_RawMalloc(sizeof(Slot) * (size_t)cap);
    if (slots == NULL)
        return -2;
    for (Py_ssize_t i = 0; i < cap; i++)
        slots[i].at = -1;
    *slots_out = slots;
    *cap_out = cap;
    const unsigned char *p = data, *end = data + n;
    while (p < end) {
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        const unsigned char *e = nl ? nl : end;
        if (e == p) { /* a blank line */
            p = e + 1;
            continue;
        }
        Py_ssize_t digits = count_digits(data, p, e);
        const unsigned char *q = e - digits;
        if (digits == 0 || digits > MAX_DIGITS || q == p || q[-1] != '|' || k >= room)
            return -1;
        int64_t v = value(data, q, e, digits);
        const unsigned char *name = p;
        Py_ssize_t len = (q - 1) - p;
        uint64_t first, last;
        words(name, len, limit, &first, &last);
        uint64_t h = hash_words(first, last, len);
        Py_ssize_t mask = cap - 1, at = (Py_ssize_t)(h & (uint64_t)mask);
        int32_t index = -1;
        while (slots[at].at >= 0) {
            Slot *slot = &slots[at];
            /* Up to 16 bytes, the two words are the whole name. */
            if (slot->len == len && slot->first == first && slot->last == last &&
                (len <= 16 || memcmp(data + slot->at, name, (size_t)len) == 0)) {
                index = slot->index;
                break;
            }
            at = (at + 1) & mask;
        }
        if (index < 0) {
            if (names >= max_names)
                return -1;
            index = (int32_t)names++;
            slots[at].at = name - data;
            slots[at].len = len;
            slots[at].first = first;
            slots[at].last = last;
            slots[at].index = index;
            if (4 * names > 3 * cap) { /* keep the table at most 3/4 full: grow it */
                Py_ssize_t new_cap = 4 * cap;
                Slot *grown = PyMem_RawMalloc(sizeof(Slot) * (size_t)new_cap);
                if (grown == NULL)
                    return -2;
                for (Py_ssize_t i = 0; i < new_cap; i++)
                    grown[i].at = -1;
                for (Py_ssize_t i = 0; i < cap; i++) {
                    if (slots[i].at < 0)
                        continue;
                    uint64_t hi = hash_words(slots[i].first, slots[i].last, slots[i].len);
                    Py_ssize_t j = (Py_ssize_t)(hi & (uint64_t)(new_cap - 1));
                    while (grown[j].at >= 0)
                        j = (j + 1) & (new_cap - 1);
                    grown[j] = slots[i];
                }
                PyMem_RawFree(slots);
                slots = grown;
                cap = new_cap;
                *slots_out = slots;
                *cap_out = cap;
            }
        }
        ids[k] = index;
        values[k] = v;
        k++;
        line_bytes += e - p;
        p = e + 1;
    }
    *names_out = names;
    *bytes_out = line_bytes;
    return k;
}

static PyObject *
ctext_lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "lines() takes 5 arguments");
        return NULL;
    }
    Py_ssize_t n = PyLong_AsSsize_t(args[1]);
    Py_ssize_t max_names = PyLong_AsSsize_t(args[4]);
    if ((n == -1 || max_names == -1) && PyErr_Occurred())
        return NULL;
    Py_buffer data, ids, values;
    if (get(args[0], &data, 0, 0, "data") < 0)
        return NULL;
    if (get(args[2], &ids, 4, 1, "ids") < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (get(args[3], &values, 8, 1, "values") < 0) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&ids);
        return NULL;
    }
    PyObject *result = NULL, *list = NULL;
    Slot *slots = NULL;
    Py_ssize_t cap = 0, names = 0, line_bytes = 0, k = -1;
    Py_ssize_t room = ids.len / 4 < values.len / 8 ? ids.len / 4 : values.len / 8;
    if (n < 0 || n > data.len) {
        PyErr_SetString(PyExc_ValueError, "n: outside the data");
        goto done;
    }
    /* The lines are read without the GIL: the buffers are held, the table is raw memory. */
    Py_BEGIN_ALLOW_THREADS
    k = read_lines((const unsigned char *)data.buf, n,
                   (const unsigned char *)data.buf + data.len, (int32_t *)ids.buf,
                   (int64_t *)values.buf, room, &slots, &cap, &names, max_names,
                   &line_bytes);
    Py_END_ALLOW_THREADS
    if (k == -2) {
        PyErr_NoMemory();
        goto done;
    }
    if (k == -1) {
        Py_INCREF(Py_None);
        result = Py_None;
        goto done;
    }
    list = PyList_New(names);
    if (list == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < cap; i++) {
        if (slots[i].at < 0)
            continue;
        PyObject *b = PyBytes_FromStringAndSize((const char *)data.buf + slots[i].at,
                                                slots[i].len);
        if (b == NULL) {
            Py_DECREF(list);
            goto done;
        }
        PyList_SET_ITEM(list, slots[i].index, b);
    }
    result = Py_BuildValue("(nnN)", k, line_bytes, list);
done:
    PyMem_RawFree(slots);
    PyBuffer_Release(&data);
    PyBuffer_Release(&ids);
    PyBuffer_Release(&values);
    return result;
}

static PyMethodDef methods[] = {
    {"lines", (PyCFunction)(void (*)(void))ctext_lines, METH_FASTCALL,
     "lines(data, n, ids, values, max_names): a chunk's usual lines, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "liteprof.log._ctext", "The text reader's line loop.", -1, methods,
};

PyMODINIT_FUNC
PyInit__ctext(void)
{
    return PyModule_Create(&module_def);
}
