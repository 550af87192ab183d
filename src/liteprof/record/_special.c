/* liteprof.record._core: special methods without a bound-method allocation.
 *
 * Cold code, kept out of the hot unit (_core.c): the descriptors are made once at import;
 * what runs per scope is the vectorcall of a freelisted bound object, which calls the
 * implementation in _core.c through a function pointer.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "_special.h"

#define FREELIST_MAX 64

/* `with x:` looks __enter__ and __exit__ up on type(x) and binds both; for a method
 * descriptor each binding allocates a GC-tracked builtin method, which costs about as
 * much as the whole recording work of a scope. These descriptors bind to a small
 * freelisted object instead (or, for the shared NOOP, to one bound object made once).
 * Only exact instances of the owning type get that object: it is not GC-tracked, which
 * is safe because such an instance has no __dict__ through which it could refer back to
 * it; instances of subclasses get an ordinary method object. */


typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *self;
    lp_special_impl impl;
    const char *name;
} BoundSpecial;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyTypeObject *owner;
    lp_special_impl impl;
    const char *name;
    PyObject *singleton; /* owner's only instance (NOOP), or NULL */
    PyObject *bound;     /* the bound object for singleton, made once */
} SpecialDescr;

static PyTypeObject BoundSpecialType;
static PyTypeObject SpecialDescrType;

static BoundSpecial *bs_freelist[FREELIST_MAX];
static int bs_nfree = 0;

static PyObject *
bs_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    BoundSpecial *b = (BoundSpecial *)op;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", b->name);
        return NULL;
    }
    return b->impl(b->self, args, PyVectorcall_NARGS(nargsf));
}

static PyObject *
bs_new(PyObject *self, lp_special_impl impl, const char *name)
{
    BoundSpecial *b;
    if (bs_nfree > 0) {
        b = bs_freelist[--bs_nfree];
    }
    else {
        b = (BoundSpecial *)PyObject_Malloc(sizeof(BoundSpecial));
        if (b == NULL)
            return PyErr_NoMemory();
    }
    (void)PyObject_Init((PyObject *)b, &BoundSpecialType);
    b->vectorcall = bs_vectorcall;
    Py_INCREF(self);
    b->self = self;
    b->impl = impl;
    b->name = name;
    return (PyObject *)b;
}

static void
bs_dealloc(BoundSpecial *b)
{
    PyObject *self = b->self;
    b->self = NULL;
    if (bs_nfree < FREELIST_MAX)
        bs_freelist[bs_nfree++] = b;
    else
        PyObject_Free(b);
    Py_XDECREF(self);
}

static PyObject *
bs_repr(BoundSpecial *b)
{
    return PyUnicode_FromFormat("<bound method %s.%s of %R>", Py_TYPE(b->self)->tp_name,
                                b->name, b->self);
}

static PyMemberDef bs_members[] = {
    {"__self__", T_OBJECT, offsetof(BoundSpecial, self), READONLY, NULL},
    {"__name__", T_STRING, offsetof(BoundSpecial, name), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject BoundSpecialType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "liteprof.record._core._BoundSpecial",
    .tp_basicsize = sizeof(BoundSpecial),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_dealloc = (destructor)bs_dealloc,
    .tp_repr = (reprfunc)bs_repr,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(BoundSpecial, vectorcall),
    .tp_members = bs_members,
};

/* Called through the class, as contextlib.ExitStack does: Type.__exit__(obj, ...). */
static PyObject *
sd_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    SpecialDescr *d = (SpecialDescr *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", d->name);
        return NULL;
    }
    if (nargs < 1 || !PyObject_TypeCheck(args[0], d->owner)) {
        PyErr_Format(PyExc_TypeError, "descriptor '%s' needs a '%s' object", d->name,
                     d->owner->tp_name);
        return NULL;
    }
    return d->impl(args[0], args + 1, nargs - 1);
}

static PyObject *
sd_get(PyObject *op, PyObject *obj, PyObject *type)
{
    SpecialDescr *d = (SpecialDescr *)op;
    if (obj == NULL) {
        Py_INCREF(op);
        return op;
    }
    if (obj == d->singleton && d->bound != NULL) {
        Py_INCREF(d->bound);
        return d->bound;
    }
    if (Py_TYPE(obj) == d->owner)
        return bs_new(obj, d->impl, d->name);
    if (!PyObject_TypeCheck(obj, d->owner)) {
        PyErr_Format(PyExc_TypeError, "descriptor '%s' needs a '%s' object", d->name,
                     d->owner->tp_name);
        return NULL;
    }
    return PyMethod_New(op, obj);
}

static PyObject *
sd_repr(SpecialDescr *d)
{
    return PyUnicode_FromFormat("<method '%s' of '%s' objects>", d->name, d->owner->tp_name);
}

static PyMemberDef sd_members[] = {
    {"__name__", T_STRING, offsetof(SpecialDescr, name), READONLY, NULL},
    {"__objclass__", T_OBJECT, offsetof(SpecialDescr, owner), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject SpecialDescrType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "liteprof.record._core._SpecialMethod",
    .tp_basicsize = sizeof(SpecialDescr),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_repr = (reprfunc)sd_repr,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(SpecialDescr, vectorcall),
    .tp_members = sd_members,
    .tp_descr_get = sd_get,
};

/* Puts the descriptor into the (ready) type's dict; made once, never freed. */
int
lp_add_special(PyTypeObject *owner, const char *name, lp_special_impl impl, PyObject *singleton)
{
    SpecialDescr *d = PyObject_New(SpecialDescr, &SpecialDescrType);
    if (d == NULL)
        return -1;
    d->vectorcall = sd_vectorcall;
    d->owner = owner;
    d->impl = impl;
    d->name = name;
    d->singleton = singleton;
    d->bound = NULL;
    if (singleton != NULL) {
        d->bound = bs_new(singleton, impl, name);
        if (d->bound == NULL) {
            Py_DECREF(d);
            return -1;
        }
    }
    int rc = PyDict_SetItemString(owner->tp_dict, name, (PyObject *)d);
    Py_DECREF(d);
    if (rc == 0)
        PyType_Modified(owner);
    return rc;
}

int
lp_special_ready(void)
{
    if (PyType_Ready(&BoundSpecialType) < 0 || PyType_Ready(&SpecialDescrType) < 0)
        return -1;
    return 0;
}
