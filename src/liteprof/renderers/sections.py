"""Analysis results -> ``Document``: the tables that plain, rich and markdown all draw."""

from __future__ import annotations

from typing import Any

from .base import (
    Document,
    Section,
    fmt_change,
    fmt_duration,
    fmt_percent,
    fmt_seconds,
    one_line,
)

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

DIFF_HEADERS = [
    "Scope",
    "Base count",
    "New count",
    "Base mean",
    "New mean",
    "Base p50",
    "New p50",
    "Base p99",
    "New p99",
    "Change",
    "Verdict",
]

VERDICTS = ("slower", "faster", "same", "added", "removed")


def row_label(row: dict[str, Any]) -> str:
    """Extra identity of a ``--by process|thread`` row."""
    parts = []
    if "pid" in row:
        parts.append(f"pid {row['pid']}" if row["pid"] is not None else "pid ?")
    if "tid" in row:
        name = one_line(str(row.get("thread") or "?"))
        parts.append(f"tid {row['tid']} {name}" if row["tid"] is not None else "tid ?")
    return ", ".join(parts)


def scope_cells(row: dict[str, Any]) -> list[str]:
    name = one_line(row["name"])
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


def report_summary(report: dict[str, Any]) -> list[str]:
    wall = report.get("wall_ns")
    return [
        f"liteprof {report.get('liteprof_version', '')} report: "
        f"{report['records']} events, {report['skipped']} skipped, "
        f"wall {fmt_seconds(wall) + ' s' if wall is not None else 'unknown'}",
        "sources: " + ", ".join(one_line(s) for s in report.get("sources", [])),
    ]


def slowest(entry: dict[str, Any]) -> str:
    s = entry["slowest"]
    rank = "" if s.get("rank") is None else f" rank {s['rank']}"
    return f"{s.get('name')} (pid {s.get('pid')}{rank})"


def report_document(report: dict[str, Any]) -> Document:
    """The report's tables: scopes, one per group, processes, across processes."""
    out = [
        Section(
            "Scopes (largest total first)",
            SCOPE_HEADERS,
            [scope_cells(r) for r in report["scopes"]],
        )
    ]
    for group in report["groups"]:
        rows = [
            [one_line(s["name"]), fmt_seconds(s["total_ns"]), fmt_percent(s["share"])]
            for s in group["scopes"]
        ]
        rows.append(["TOTAL", fmt_seconds(group["total_ns"]), "100.00%"])
        out.append(
            Section(f"Group {one_line(group['group'])}", ["Scope", "Seconds", "% of group"], rows)
        )
    if len(report.get("processes", [])) > 1:
        out.append(
            Section(
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
            Section(
                "Across processes (per-process totals)",
                ["Scope", "Processes", "Min (s)", "Median (s)", "Max (s)", "Slowest"],
                [
                    [
                        one_line(c["name"]),
                        str(c["processes"]),
                        fmt_seconds(c["min_total_ns"]),
                        fmt_seconds(c["median_total_ns"]),
                        fmt_seconds(c["max_total_ns"]),
                        one_line(slowest(c)),
                    ]
                    for c in cross
                ],
            )
        )
    return Document("liteprof report", report_summary(report), out)


def diff_cells(row: dict[str, Any]) -> list[str]:
    b, n = row["base"], row["new"]

    def count(side: dict[str, Any] | None) -> str:
        return "-" if side is None else str(side["count"])

    def dur(side: dict[str, Any] | None, key: str) -> str:
        return "-" if side is None else fmt_duration(side[key])

    return [
        one_line(row["name"]),
        count(b),
        count(n),
        dur(b, "mean_ns"),
        dur(n, "mean_ns"),
        dur(b, "p50_ns"),
        dur(n, "p50_ns"),
        dur(b, "p99_ns"),
        dur(n, "p99_ns"),
        fmt_change(row["change"]),
        str(row["verdict"]),
    ]


def diff_summary(diff: dict[str, Any]) -> list[str]:
    """The verdict counts and the settings, then the sources of both runs."""
    counts = {v: 0 for v in VERDICTS}
    for row in diff["scopes"]:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    threshold = diff.get("threshold")
    settings = [] if threshold is None else [f"threshold {threshold:g}%"]
    alpha = diff.get("alpha")
    settings.append("Mann-Whitney U" + ("" if alpha is None else f" at alpha {alpha:g}"))
    return [
        f"liteprof diff: {len(diff['scopes'])} scopes: "
        + ", ".join(f"{counts[v]} {v}" for v in VERDICTS)
        + f" ({', '.join(settings)})",
        "base: " + ", ".join(one_line(s) for s in diff.get("base", [])),
        "new: " + ", ".join(one_line(s) for s in diff.get("new", [])),
    ]


def diff_document(diff: dict[str, Any]) -> Document:
    rows = diff["scopes"]
    table = Section(
        "",
        DIFF_HEADERS,
        [diff_cells(r) for r in rows],
        styles=[str(r["verdict"]) for r in rows],
    )
    return Document("liteprof diff", diff_summary(diff), [table])


def document(data: dict[str, Any], kind: str) -> Document:
    """The ``Document`` of a report or diff object."""
    if kind == "diff":
        return diff_document(data)
    return report_document(data)
