"""Which recorder records: the compiled core ``_core`` or its pure-Python twin.

The seam between the public API and a recorder is the ``Backend`` protocol below; the
recorder calls back into a ``SessionCallbacks`` object (``session._Session``) for
everything that happens once per file, thread, block or name. Both are ``typing``
protocols only, so that mypy sees the seam; nothing here runs per event.

The C core keeps its state in C globals, one set per process: a second interpreter in
the same process (``_xxsubinterpreters``, ``concurrent.interpreters``) that used it would
switch recording on and off under the main interpreter's feet and call back into the
main interpreter's objects. Only the main interpreter uses the C core; every other one
records with the pure-Python twin, whose state lives in its own module objects.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Protocol

    class SessionCallbacks(Protocol):
        """What a recorder calls on the slow paths; each returns ``-1``/``None`` on failure
        (the session has then stopped recording and warned once) instead of raising."""

        def thread(self, native_id: int, name: str) -> int: ...
        def block(self, owner: int, size: int) -> Any: ...
        def release(self, mapped: Any) -> None: ...
        def name_id(self, name: str) -> int: ...

    class Backend(Protocol):
        """A recorder module: ``_core`` (C) or ``_pyrecorder`` (pure Python)."""

        BACKEND: str
        scope: Callable[[str], Any]
        Scope: type[Any]

        def timed_function(self, func: Callable[..., Any], name: str) -> Callable[..., Any]: ...
        def start(self, session: SessionCallbacks) -> None: ...
        def stop(self) -> None: ...
        def active(self) -> bool: ...
        def after_fork_child(self) -> None: ...
        def set_decorator(
            self, fn: Callable[[Callable[..., Any], str], Callable[..., Any]] | None
        ) -> None: ...
        def set_clock(self, clock: Callable[[], int] | None) -> None: ...


def in_main_interpreter() -> bool:
    """True in the process's main interpreter (where the C core may be used)."""
    import _thread

    check = getattr(_thread, "_is_main_interpreter", None)  # 3.12+
    if check is not None:
        return bool(check())
    try:  # 3.9-3.11: a builtin extension, ~0.1 ms to import
        import _xxsubinterpreters as interpreters  # type: ignore[import-not-found]
    except ImportError:  # built without sub-interpreter support: there is only one
        return True
    return bool(interpreters.get_current() == interpreters.get_main())


def _load(name: str) -> Backend:
    if name == "c":
        if not in_main_interpreter():
            raise ImportError("the C core records only in the main interpreter")
        from . import _core

        return _core  # type: ignore[return-value]
    if name == "python":
        from . import _pyrecorder

        return _pyrecorder  # type: ignore[return-value]
    raise ValueError(f"unknown backend {name!r}; choose 'c' or 'python'")


core_missing: str | None = None
"""Why the C core is not recording although it was not declined (``LITEPROF_PURE``): the
install could not compile it. ``None`` where it records, was declined, or cannot record
(a sub-interpreter). The session says so once, when recording starts."""


def _choose() -> Backend:
    global core_missing
    if os.environ.get("LITEPROF_PURE", "") not in ("", "0"):
        return _load("python")
    try:
        return _load("c")
    except ImportError as exc:
        if in_main_interpreter():
            core_missing = str(exc) or type(exc).__name__
        return _load("python")


current: Backend = _choose()
"""The recorder in use; ``liteprof.testing.use_backend`` switches it."""


def available() -> list[str]:
    """Backends importable here: ``"c"`` when the core is built, always ``"python"``."""
    try:
        _load("c")
    except ImportError:
        return ["python"]
    return ["c", "python"]


def switch(name: str) -> Backend:
    """Make ``name`` the current backend (recording must be off); returns it."""
    global current
    current = _load(name)
    return current
