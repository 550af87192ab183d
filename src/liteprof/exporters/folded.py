"""Folded stacks: one line per distinct call path, ``outer;inner;leaf SELF_NS``.

What flamegraph.pl, inferno, speedscope and most flame-graph tools read. The number is
the path's self time in nanoseconds (the time spent in the leaf itself), so the lines
add up to the profile's total self time and each frame's width is its total time.
A ``;`` inside a scope name would split it, so it is written as ``,``; line breaks as
spaces. Takes vLLM text logs too (each event is a root there).
"""

from __future__ import annotations

from typing import Any, BinaryIO

import numpy as np

from ..log.events import Events
from . import _tree
from .base import Exporter


def _frame(name: str) -> str:
    return name.replace(";", ",").replace("\r", " ").replace("\n", " ")


class FoldedExporter(Exporter):
    """Writes folded stacks (``.folded``), largest self time first."""

    extension = ".folded"
    timeline = False

    def write(self, events: Events, out: BinaryIO) -> None:
        path, table = _tree.stacks(events)
        self.lines = 0
        if not table:
            return
        total = np.zeros(len(table), np.int64)
        np.add.at(total, path, events.self_ns)
        names = [_frame(n) for n in events.names]
        text = [";".join(p) for p in _tree.path_names(table, names)]
        order = np.argsort(-total, kind="stable")
        lines = [f"{text[i]} {total[i]}\n" for i in order.tolist() if total[i] > 0]
        self.lines = len(lines)
        out.write("".join(lines).encode("utf-8", "backslashreplace"))

    def summary(self) -> dict[str, Any]:
        return {"lines": self.lines}
