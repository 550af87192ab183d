"""liteprof: a low-overhead scoped-timing profiler.

Mark blocks with ``with liteprof.scope("Group:Name"):``, ``@liteprof.timed`` or a
module-level ``liteprof.Scope``; run with ``LITEPROF_LOG=dir`` to record; read the result
with ``liteprof report dir``. Without ``LITEPROF_LOG`` (and no ``enable()``) the scopes cost
almost nothing. See ``docs/`` and ``../shared/SPEC.md`` in the repository.
"""

from __future__ import annotations

from ._api import (
    BACKEND,
    Scope,
    disable,
    enable,
    enabled,
    flush,
    log_path,
    maybe_emit_report,
    scope,
    timed,
)
from ._version import __version__

__all__ = [
    "BACKEND",
    "Scope",
    "__version__",
    "disable",
    "enable",
    "enabled",
    "flush",
    "log_path",
    "maybe_emit_report",
    "scope",
    "timed",
]

from ._api import _enable_from_environment

_enable_from_environment()
del _enable_from_environment
