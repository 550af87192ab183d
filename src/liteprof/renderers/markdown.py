"""``--format markdown``: GitHub-flavoured tables."""

from __future__ import annotations

from typing import Any

from .base import (
    SCOPE_HEADERS,
    Renderer,
    fmt_percent,
    fmt_seconds,
    one_line,
    scope_cells,
    summary_lines,
)


def md_cell(text: str) -> str:
    text = one_line(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("`", "\\`")


def md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(headers))) + "|",
    ]
    for cells in rows:
        lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    return lines


class MarkdownRenderer(Renderer):
    def render(self, report: dict[str, Any]) -> str:
        out = ["# liteprof report", ""]
        out += [md_cell(line) + "  " for line in summary_lines(report)]
        out += ["", "## Scopes", ""]
        out += md_table(SCOPE_HEADERS, [scope_cells(r, None) for r in report["scopes"]])
        for group in report["groups"]:
            out += ["", f"## Group {md_cell(group['group'])}", ""]
            rows = [
                [s["name"], fmt_seconds(s["total_ns"]), fmt_percent(s["share"])]
                for s in group["scopes"]
            ]
            rows.append(["TOTAL", fmt_seconds(group["total_ns"]), "100.00%"])
            out += md_table(["Scope", "Seconds", "% of group"], rows)
        if len(report.get("processes", [])) > 1:
            out += ["", "## Processes", ""]
            out += md_table(
                ["PID", "Name", "Host", "Rank", "Events"],
                [
                    [
                        str(p["pid"]),
                        p["name"],
                        p["host"],
                        "" if p["rank"] is None else str(p["rank"]),
                        str(p["records"]),
                    ]
                    for p in report["processes"]
                ],
            )
        cross = report.get("cross_process") or []
        if cross:
            out += ["", "## Across processes", ""]
            out += md_table(
                [
                    "Scope",
                    "Processes",
                    "Min total (s)",
                    "Median total (s)",
                    "Max total (s)",
                    "Slowest",
                ],
                [
                    [
                        c["name"],
                        str(c["processes"]),
                        fmt_seconds(c["min_total_ns"]),
                        fmt_seconds(c["median_total_ns"]),
                        fmt_seconds(c["max_total_ns"]),
                        _slowest(c),
                    ]
                    for c in cross
                ],
            )
        return "\n".join(out)


def _slowest(entry: dict[str, Any]) -> str:
    s = entry["slowest"]
    rank = "" if s.get("rank") is None else f" rank {s['rank']}"
    return f"{s.get('name')} (pid {s.get('pid')}{rank})"
