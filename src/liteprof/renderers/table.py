"""``--format table``: rich on a terminal, plain aligned text when piped."""

from __future__ import annotations

import io
import sys
from typing import Any

from .base import (
    SCOPE_HEADERS,
    Renderer,
    fmt_percent,
    fmt_seconds,
    one_line,
    scope_cells,
    shorten,
    summary_lines,
)
from .markdown import _slowest

Section = tuple[str, list[str], list[list[str]]]


def sections(report: dict[str, Any]) -> list[Section]:
    """The report's tables as (title, headers, rows of cells)."""
    out: list[Section] = [
        ("Scopes (largest total first)", SCOPE_HEADERS, [scope_cells(r) for r in report["scopes"]])
    ]
    for group in report["groups"]:
        rows = [
            [shorten(one_line(s["name"])), fmt_seconds(s["total_ns"]), fmt_percent(s["share"])]
            for s in group["scopes"]
        ]
        rows.append(["TOTAL", fmt_seconds(group["total_ns"]), "100.00%"])
        out.append((f"Group {one_line(group['group'])}", ["Scope", "Seconds", "% of group"], rows))
    if len(report.get("processes", [])) > 1:
        out.append(
            (
                "Processes",
                ["PID", "Name", "Host", "Rank", "Events"],
                [
                    [
                        str(p["pid"]),
                        one_line(p["name"]),
                        one_line(p["host"]),
                        "" if p["rank"] is None else str(p["rank"]),
                        str(p["records"]),
                    ]
                    for p in report["processes"]
                ],
            )
        )
    cross = report.get("cross_process") or []
    if cross:
        out.append(
            (
                "Across processes (per-process totals)",
                ["Scope", "Processes", "Min (s)", "Median (s)", "Max (s)", "Slowest"],
                [
                    [
                        shorten(one_line(c["name"])),
                        str(c["processes"]),
                        fmt_seconds(c["min_total_ns"]),
                        fmt_seconds(c["median_total_ns"]),
                        fmt_seconds(c["max_total_ns"]),
                        one_line(_slowest(c)),
                    ]
                    for c in cross
                ],
            )
        )
    return out


def plain_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [len(h) for h in headers]
    for cells in rows:
        for i, c in enumerate(cells):
            widths[i] = max(widths[i], len(c))

    def line(cells: list[str]) -> str:
        parts = [cells[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [line(headers), rule] + [line(c) for c in rows]


class PlainTableRenderer(Renderer):
    def render(self, report: dict[str, Any]) -> str:
        out = list(summary_lines(report))
        for title, headers, rows in sections(report):
            out += ["", title]
            out += plain_table(headers, rows)
        return "\n".join(out)


class RichTableRenderer(Renderer):
    def render(self, report: dict[str, Any]) -> str:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        buf = io.StringIO()
        console = Console(file=buf, force_terminal=sys.stdout.isatty(), width=160)
        for line in summary_lines(report):
            console.print(Text(line))
        for title, headers, rows in sections(report):
            table = Table(title=title, title_justify="left")
            for i, h in enumerate(headers):
                table.add_column(
                    h, justify="left" if i == 0 else "right", overflow="ellipsis", no_wrap=True
                )
            for cells in rows:
                table.add_row(*(Text(c) for c in cells))
            console.print(table)
        return buf.getvalue().rstrip("\n")


class TableRenderer(Renderer):
    """Rich when writing to a terminal and rich is installed; plain text otherwise."""

    def render(self, report: dict[str, Any]) -> str:
        if sys.stdout.isatty():
            try:
                import rich  # noqa: F401
            except ImportError:
                pass
            else:
                return RichTableRenderer().render(report)
        return PlainTableRenderer().render(report)
