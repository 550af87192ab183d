"""``--format csv``: one row per scope (per scope and process or thread with ``--by``);
with ``--tree``, one row per node of the call tree."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, cast

from ..analysis.types import Report, Result
from .base import Renderer, one_line

COLUMNS = [
    "name",
    "group",
    "count",
    "errors",
    "total_ns",
    "self_ns",
    "mean_ns",
    "min_ns",
    "p50_ns",
    "p90_ns",
    "p99_ns",
    "max_ns",
]


TREE_COLUMNS = [
    "node",
    "parent",
    "depth",
    "name",
    "count",
    "errors",
    "total_ns",
    "self_ns",
    "p50_ns",
    "p99_ns",
]
"""``node`` numbers the rows from 0 (depth first); ``parent`` is the node of the row this
one is nested in, empty for a root."""


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return one_line(value)
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _tree_rows(report: Report) -> Iterable[Mapping[str, Any]]:
    above: list[int] = []  # the node at each depth on the way down to the current one
    for i, node in enumerate(report["tree"]):
        depth = node["depth"]
        del above[depth:]
        row = dict(node, node=i, parent=above[-1] if above else None)
        above.append(i)
        yield row


class CsvRenderer(Renderer):
    kinds: ClassVar[frozenset[str]] = frozenset({"report", "tree"})

    def render(self, data: Result, kind: str = "report") -> str:
        report = cast(Report, data)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if kind == "tree":
            columns = TREE_COLUMNS
            rows: Iterable[Mapping[str, Any]] = _tree_rows(report)
        else:
            scopes = report["scopes"]
            first: Mapping[str, Any] = scopes[0] if len(scopes) else {}
            columns = COLUMNS + [c for c in ("pid", "tid", "thread") if c in first]
            rows = scopes
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(col)) for col in columns])
        return out.getvalue().rstrip("\n")
