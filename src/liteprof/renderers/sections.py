"""Analysis results -> ``Document``: the tables that plain, rich and markdown all draw."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from ..analysis.types import (
    CrossProcessRow,
    Diff,
    DiffRow,
    DiffSide,
    GroupRow,
    Report,
    Result,
    ScopeRow,
    TreeNode,
)
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

TREE_HEADERS = ["Scope", "Count", "Errors", "Total (s)", "Self (s)", "p50", "p99"]

VERDICTS = ("slower", "faster", "same", "added", "removed")


def row_label(row: Mapping[str, Any]) -> str:
    """Extra identity of a ``--by process|thread`` row."""
    parts = []
    if "pid" in row:
        parts.append(f"pid {row['pid']}" if row["pid"] is not None else "pid ?")
    if "tid" in row:
        name = one_line(str(row.get("thread") or "?"))
        parts.append(f"tid {row['tid']} {name}" if row["tid"] is not None else "tid ?")
    return ", ".join(parts)


def scope_cells(row: ScopeRow) -> list[str]:
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


def report_summary(report: Report) -> list[str]:
    wall = report.get("wall_ns")
    return [
        f"liteprof {report.get('liteprof_version', '')} report: "
        f"{report['records']} events, {report['skipped']} skipped, "
        f"wall {fmt_seconds(wall) + ' s' if wall is not None else 'unknown'}",
        "sources: " + ", ".join(one_line(s) for s in report.get("sources", [])),
        *(
            [
                f"dropped: {dropped} older events of bounded logs (LITEPROF_MAX_MB) are in "
                "counts, errors, totals, min and max; percentiles, groups and the tree are "
                "of the events kept"
            ]
            if (dropped := sum(p.get("dropped", 0) for p in report.get("processes", [])))
            else []
        ),
        *(
            f"warning: process {p.get('pid')} ({one_line(str(p.get('name')))}): {one_line(w)}"
            for p in report.get("processes", [])
            for w in p.get("warnings", [])
        ),
    ]


def slowest(entry: CrossProcessRow) -> str:
    s = entry["slowest"]
    rank = "" if s.get("rank") is None else f" rank {s['rank']}"
    return f"{s.get('name')} (pid {s.get('pid')}{rank})"


def group_section(group: GroupRow) -> Section:
    """One group's table: its scopes nested under their parents, then the total."""
    rows: list[list[str]] = []
    indent: list[int] = []
    level: dict[str, int] = {}
    for s in group["scopes"]:
        # Depth first: a scope's parent was met before it.
        parent = s["parent"]
        depth = level.get(parent, -1) + 1 if parent is not None else 0
        level[s["name"]] = depth
        rows.append([one_line(s["name"]), fmt_seconds(s["total_ns"]), fmt_percent(s["share"])])
        indent.append(depth)
    rows.append(["TOTAL", fmt_seconds(group["total_ns"]), "100.00%"])
    indent.append(0)
    return Section(
        f"Group {one_line(group['group'])}",
        ["Scope", "Seconds", "% of group"],
        rows,
        indent=indent,
    )


def tree_cells(node: TreeNode) -> list[str]:
    return [
        one_line(node["name"]),
        str(node["count"]),
        str(node["errors"]),
        fmt_seconds(node["total_ns"]),
        fmt_seconds(node["self_ns"]),
        fmt_duration(node["p50_ns"]),
        fmt_duration(node["p99_ns"]),
    ]


def tree_document(report: Report) -> Document:
    """The call tree as one indented table."""
    nodes = list(report["tree"])
    section = Section(
        "Call tree (depth first, children by total)",
        TREE_HEADERS,
        [tree_cells(n) for n in nodes],
        indent=[n["depth"] for n in nodes],
    )
    return Document("liteprof call tree", report_summary(report), [section])


def report_document(report: Report) -> Document:
    """The report's tables: scopes, one per group, processes, across processes."""
    out = [
        Section(
            "Scopes (largest total first)",
            SCOPE_HEADERS,
            [scope_cells(r) for r in report["scopes"]],
        )
    ]
    out += [group_section(g) for g in report["groups"]]
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


def diff_cells(row: DiffRow) -> list[str]:
    b, n = row["base"], row["new"]

    def count(side: DiffSide | None) -> str:
        return "-" if side is None else str(side["count"])

    def dur(side: DiffSide | None, key: str) -> str:
        return "-" if side is None else fmt_duration(cast("dict[str, int]", side)[key])

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


def diff_summary(diff: Diff) -> list[str]:
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


def diff_document(diff: Diff) -> Document:
    rows = diff["scopes"]
    table = Section(
        "",
        DIFF_HEADERS,
        [diff_cells(r) for r in rows],
        styles=[str(r["verdict"]) for r in rows],
    )
    return Document("liteprof diff", diff_summary(diff), [table])


def document(data: Result, kind: str) -> Document:
    """The ``Document`` of a report (kind ``"report"``), its call tree (``"tree"``) or a
    diff (``"diff"``)."""
    if kind == "diff":
        return diff_document(cast(Diff, data))
    if kind == "tree":
        return tree_document(cast(Report, data))
    return report_document(cast(Report, data))
