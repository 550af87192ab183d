"""Shared pieces of the renderers."""

from __future__ import annotations

from typing import Any

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class Renderer:
    """Formats a report object as text."""

    def render(self, report: dict[str, Any]) -> str:
        raise NotImplementedError


def one_line(text: str) -> str:
    """``text`` with backslashes and control characters escaped, so a row stays one row."""
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif not ch.isprintable() and ch != " ":
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def shorten(text: str, width: int = 100) -> str:
    if len(text) <= width:
        return text
    half = (width - 1) // 2
    return text[:half] + "…" + text[len(text) - (width - 1 - half) :]


def fmt_seconds(ns: float | int | None) -> str:
    if ns is None:
        return "-"
    return f"{ns / 1e9:.6f}"


def fmt_duration(ns: float | int | None) -> str:
    """A human duration with a unit that fits: ns, µs, ms or s."""
    if ns is None:
        return "-"
    v = float(ns)
    a = abs(v)
    if a < 1e3:
        return f"{v:.0f}ns"
    if a < 1e6:
        return f"{v / 1e3:.2f}µs"
    if a < 1e9:
        return f"{v / 1e6:.2f}ms"
    return f"{v / 1e9:.3f}s"


def fmt_percent(share: float) -> str:
    return f"{100.0 * share:.2f}%"


def row_label(row: dict[str, Any]) -> str:
    """Extra identity of a ``--by process|thread`` row."""
    parts = []
    if "pid" in row:
        parts.append(f"pid {row['pid']}" if row["pid"] is not None else "pid ?")
    if "tid" in row:
        name = one_line(str(row.get("thread") or "?"))
        parts.append(f"tid {row['tid']} {name}" if row["tid"] is not None else "tid ?")
    return ", ".join(parts)


SCOPE_HEADERS = [
    "Scope",
    "Count",
    "Errors",
    "Total (s)",
    "Self (s)",
    "Mean",
    "Min",
    "p50",
    "p90",
    "p99",
    "Max",
]


def scope_cells(row: dict[str, Any], name_width: int | None = 100) -> list[str]:
    name = one_line(row["name"])
    if name_width:
        name = shorten(name, name_width)
    label = row_label(row)
    if label:
        name = f"{name} [{label}]"
    return [
        name,
        str(row["count"]),
        str(row["errors"]),
        fmt_seconds(row["total_ns"]),
        fmt_seconds(row["self_ns"]),
        fmt_duration(row["mean_ns"]),
        fmt_duration(row["min_ns"]),
        fmt_duration(row["p50_ns"]),
        fmt_duration(row["p90_ns"]),
        fmt_duration(row["p99_ns"]),
        fmt_duration(row["max_ns"]),
    ]


def summary_lines(report: dict[str, Any]) -> list[str]:
    wall = report.get("wall_ns")
    lines = [
        f"liteprof {report.get('liteprof_version', '')} report: "
        f"{report['records']} events, {report['skipped']} skipped, "
        f"wall {fmt_seconds(wall) + ' s' if wall is not None else 'unknown'}",
        "sources: " + ", ".join(one_line(s) for s in report.get("sources", [])),
    ]
    return lines
