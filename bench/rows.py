"""The hot-path rows shared by the suites: floors, liteprof's rows, the asyncio rows.

Every scope row uses the constant name ``SCOPE_NAME`` (as real code does). A row's key is
prefixed per backend by the suite that measures it (``c_scope``, ``py_off_scope``...).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable

from .kernels import Row

SCOPE_NAME = "Bench:scope"


def trivial() -> None:
    """The function the call rows call."""
    return None


def passthrough(func: Callable[..., Any]) -> Callable[..., Any]:
    """The usual hand-written decorator: what ``@liteprof.timed`` is compared with."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


FLOOR_ROWS = [
    Row("empty", "empty loop", "pass"),
    Row(
        "nullcontext",
        "`with contextlib.nullcontext()`",
        "with contextlib.nullcontext():\n    pass",
        ("contextlib",),
    ),
    Row("call", "bare call of a trivial function", "f()", ("f",)),
    Row("wraps", "`functools.wraps` pass-through wrapper call", "w()", ("w",)),
]

ENABLED_ROWS = [
    Row(
        "scope",
        f'`with liteprof.scope("{SCOPE_NAME}")`',
        f'with liteprof.scope("{SCOPE_NAME}"):\n    pass',
        ("liteprof",),
    ),
    Row(
        "predeclared",
        "`with PREDECLARED` (a `liteprof.Scope` made once)",
        "with PRE:\n    pass",
        ("PRE",),
    ),
    Row("timed", "`@liteprof.timed` call", "t()", ("t",)),
]

DISABLED_ROWS = [
    Row(
        "scope",
        f'`with liteprof.scope("{SCOPE_NAME}")`',
        f'with liteprof.scope("{SCOPE_NAME}"):\n    pass',
        ("liteprof",),
    ),
    Row("predeclared", "`with PREDECLARED`", "with PRE:\n    pass", ("PRE",)),
    Row("timed", "`@liteprof.timed` call", "t()", ("t",)),
]

ASYNC_EMPTY = Row("async_empty", "empty loop in an asyncio task", "pass", is_async=True)
ASYNC_NULL = Row(
    "async_nullcontext",
    "`with contextlib.nullcontext()` in an asyncio task",
    "with contextlib.nullcontext():\n    pass",
    ("contextlib",),
    is_async=True,
)
ASYNC_SCOPE = Row(
    "async_scope",
    f'`with liteprof.scope("{SCOPE_NAME}")` in an asyncio task',
    f'with liteprof.scope("{SCOPE_NAME}"):\n    pass',
    ("liteprof",),
    is_async=True,
)


def floor_namespace() -> dict[str, Any]:
    """The objects the floor rows use."""
    return {"contextlib": contextlib, "f": trivial, "w": passthrough(trivial)}


def liteprof_namespace(lp: Any) -> dict[str, Any]:
    """The objects liteprof's rows use, made now (with the backend that is current)."""
    return {
        "liteprof": lp,
        "PRE": lp.Scope("Bench:predeclared"),
        "t": lp.timed(trivial),
        "contextlib": contextlib,
    }


def backend_prefix(backend: str) -> str:
    """``c_`` or ``py_``: the key prefix of a backend's rows."""
    return "c_" if backend == "c" else "py_"
