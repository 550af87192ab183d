/* liteprof.record._core: special methods (__enter__, __exit__) that bind without
 * allocating a method object per `with`; implemented in _special.c. */
#ifndef LITEPROF_SPECIAL_H
#define LITEPROF_SPECIAL_H

#include <Python.h>

/* The implementation of one special method: self and the call's positional arguments. */
typedef PyObject *(*lp_special_impl)(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

/* Ready the descriptor types; once, before lp_add_special. 0, or -1 with an error set. */
int lp_special_ready(void);

/* Put a descriptor for `name` into the (ready) type `owner`'s dict. With `singleton` (the
 * type's only instance), binding it returns one object made here, once. 0, or -1. */
int lp_add_special(PyTypeObject *owner, const char *name, lp_special_impl impl,
                   PyObject *singleton);

#endif
