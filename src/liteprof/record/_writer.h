/* liteprof.record._core: helpers of the log writer (liteprof/log/writer.py) that need C.
 *
 * _guard.c: a SIGBUS guard over the writer's mappings, so that another process truncating
 *           a live log (a cleanup script, logrotate copytruncate) cannot kill the program.
 * _fold.c:  folds the events of a recycled block into the summary of a bounded log
 *           (LITEPROF_MAX_MB) at C speed.
 *
 * They are compiled into _core so that wherever the C core is built, the writer has them,
 * whichever recorder records; the writer reaches them through liteprof/log/_native.py. */
#ifndef LITEPROF_WRITER_H
#define LITEPROF_WRITER_H

#include <Python.h>

/* Add the writer's functions (_guard_*, _fold) to the module. 0, or -1 with an error set. */
int lp_writer_add(PyObject *module);

extern PyMethodDef lp_guard_methods[];
extern PyMethodDef lp_fold_methods[];

#endif
