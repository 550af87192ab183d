"""``--format csv``: one row per scope (per scope and process or thread with ``--by``)."""

from __future__ import annotations

import csv
import io
from typing import Any

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


class CsvRenderer(Renderer):
    def render(self, data: dict[str, Any], kind: str = "report") -> str:
        rows = data["scopes"]
        extra = [c for c in ("pid", "tid", "thread") if rows and c in rows[0]]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS + extra)
        for row in rows:
            cells = []
            for col in COLUMNS + extra:
                value = row.get(col)
                if value is None:
                    cells.append("")
                elif isinstance(value, str):
                    cells.append(one_line(value))
                elif isinstance(value, float):
                    cells.append(f"{value:.1f}")
                else:
                    cells.append(str(value))
            writer.writerow(cells)
        return out.getvalue().rstrip("\n")
