"""What a suite's ``run(ctx)`` gets: the run's settings, liteprof, earlier results."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Any

from . import child


@dataclass
class Context:
    """One benchmark run, as the suites see it.

    ``liteprof`` and ``testing`` are the modules (``liteprof.testing``: ``use_backend()``,
    ``available_backends()``, ``set_clock()``); ``backends`` the recorders importable here,
    default first. ``results`` holds the raw results of the suites that ran before, by
    name (a suite reads only those it names in ``NEEDS``). ``notes`` go to the page's Notes.
    """

    quick: bool
    repeats: int
    tmpdir: str
    liteprof: Any
    testing: Any
    backends: list[str]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _seq: int = 0

    def fresh_dir(self, prefix: str) -> str:
        """A new directory path under the run's tmpdir (not created)."""
        self._seq += 1
        return os.path.join(self.tmpdir, f"{prefix}-{self._seq}")

    def enable(self) -> str:
        """Start recording (the current backend) into a fresh directory; that directory."""
        d = self.fresh_dir("hot")
        self.liteprof.enable(d)
        return d

    def disable(self, d: str) -> None:
        """Stop recording and delete the log directory ``d``."""
        self.liteprof.disable()
        shutil.rmtree(d, ignore_errors=True)

    def run_child(
        self, module: str, args: list[str], pure: bool = False, timeout: float = 600
    ) -> dict[str, Any]:
        """``module.child(args)`` in a fresh interpreter (see ``bench.child``)."""
        return child.run_child(module, args, pure=pure, timeout=timeout)
