"""``--format html``: the report or diff as one self-contained page.

The page works offline and makes no network request: plotly.js (from the ``plotly``
package, the ``html`` extra) and the page's own script and style (``static/``) are
inlined, and the data travels in one ``<script type="application/json">`` block. The
tables are written here as HTML, so the page's text says what the text report says even
before a script runs; the script sorts and filters them and draws the charts.

What the page may embed is bounded whatever the log's size: tables are cut at
``MAX_TABLE_ROWS``, the call tree at ``MAX_TREE_NODES``, and everything drawn from the
events is aggregated first (``htmlviews.py``).

Names are text everywhere: HTML-escaped in the tables, ``<``/``>``/``&`` escaped as
``\\uXXXX`` inside the JSON block (so no name can close it), and entity-escaped by the
script before plotly sees them (plotly reads a few HTML tags in labels).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .._version import __version__
from ..analysis.types import Result
from .base import Renderer, fmt_change, fmt_duration, fmt_seconds, one_line

if TYPE_CHECKING:
    from ..log.events import Events

MAX_TABLE_ROWS = 2000
MAX_TREE_NODES = 2000
EXTRA_HINT = "pip install 'liteprof[html]'"


class MissingExtra(RuntimeError):
    """The ``html`` extra (plotly) is not installed."""


def plotly_js() -> str:
    """plotly.js, minified, as the installed ``plotly`` package bundles it."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise MissingExtra(f"--format html needs plotly: {EXTRA_HINT}") from None
    return str(get_plotlyjs())


def _static(name: str) -> str:
    # Imported here: importlib.resources pulls in pathlib, urllib and more, which every
    # report (any format) would pay at start-up.
    from importlib import resources

    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def esc(value: object) -> str:
    """``value`` as HTML text: one line, control characters shown, markup escaped."""
    return html.escape(one_line(str(value)), quote=True)


def _clean(obj: Any) -> Any:
    """``obj`` with every string made one printable line (lone surrogates included), so
    the JSON block is valid UTF-8 and shows what the text report shows."""
    if isinstance(obj, str):
        return one_line(obj)
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def json_block(payload: Mapping[str, Any]) -> str:
    """``payload`` as JSON that is safe inside ``<script>``: no ``<``, ``>`` or ``&``."""
    text = json.dumps(_clean(payload), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for ch, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, code)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# -- tables ------------------------------------------------------------------------------


def _th(label: str, kind: str = "num") -> str:
    return f'<th data-type="{kind}" tabindex="0">{esc(label)}</th>'


def _td(text: str, value: float | int | str | None = None, cls: str = "") -> str:
    attrs = "" if value is None else f' data-v="{esc(value)}"'
    if cls:
        attrs += f' class="{cls}"'
    return f"<td{attrs}>{esc(text)}</td>"


def _cut_note(shown: int, total: int, what: str) -> str:
    if shown >= total:
        return ""
    return f'<p class="note">{shown} of {total} {what} shown (largest first).</p>'


def _table(table_id: str, headers: list[tuple[str, str]], rows: list[str], search: bool) -> str:
    head = "".join(_th(label, kind) for label, kind in headers)
    box = ""
    if search:
        box = (
            f'<input type="search" class="filter" data-table="{table_id}" '
            f'placeholder="Filter by name" aria-label="Filter {table_id} by name">'
        )
    return (
        f'{box}<div class="scroll"><table id="{table_id}" class="sortable">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _scope_label(row: Mapping[str, Any]) -> str:
    parts = []
    if "pid" in row:
        parts.append(f"pid {row['pid'] if row['pid'] is not None else '?'}")
    if "tid" in row:
        parts.append(f"tid {row['tid'] if row['tid'] is not None else '?'} {row.get('thread')}")
    return "" if not parts else " [" + ", ".join(parts) + "]"


def scopes_table(scopes: Sequence[Mapping[str, Any]]) -> str:
    headers = [("Scope", "text"), ("Count", "num"), ("Errors", "num"), ("Total (s)", "num")]
    headers += [("Self (s)", "num"), ("Mean", "num"), ("Min", "num"), ("p50", "num")]
    headers += [("p90", "num"), ("p99", "num"), ("Max", "num")]
    rows = []
    for r in scopes[:MAX_TABLE_ROWS]:
        name = str(r["name"]) + _scope_label(r)
        cells = [
            f'<td class="name" data-v="{esc(name)}">{esc(name)}</td>',
            _td(str(r["count"]), r["count"]),
            _td(str(r["errors"]), r["errors"], "err" if r["errors"] else ""),
            _td(fmt_seconds(r["total_ns"]), r["total_ns"]),
            _td(fmt_seconds(r["self_ns"]), r["self_ns"]),
        ]
        for key in ("mean_ns", "min_ns", "p50_ns", "p90_ns", "p99_ns", "max_ns"):
            cells.append(_td(fmt_duration(r[key]), r[key]))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return _table("scopes-table", headers, rows, search=True) + _cut_note(
        len(rows), len(scopes), "scopes"
    )


def processes_table(processes: Sequence[Mapping[str, Any]]) -> str:
    headers = [("PID", "num"), ("Name", "text"), ("Host", "text"), ("Rank", "num")]
    headers.append(("Events", "num"))
    rows = []
    for p in processes[:MAX_TABLE_ROWS]:
        rank = p.get("rank")
        rows.append(
            "<tr>"
            + _td(str(p["pid"]), p["pid"])
            + _td(str(p["name"]), str(p["name"]), "t")
            + _td(str(p["host"]), str(p["host"]), "t")
            + _td("" if rank is None else str(rank), -1 if rank is None else rank)
            + _td(str(p["records"]), p["records"])
            + "</tr>"
        )
    return _table("processes-table", headers, rows, search=False) + _cut_note(
        len(rows), len(processes), "processes"
    )


def stragglers_table(stragglers: Sequence[Mapping[str, Any]]) -> str:
    headers = [("Scope", "text"), ("Slowest process", "text"), ("Its total (s)", "num")]
    headers += [("Median (s)", "num"), ("× median", "num"), ("Processes", "num")]
    rows = []
    for s in stragglers:
        ratio = s["ratio"]
        hot = ratio is not None and ratio >= 1.25
        rows.append(
            "<tr>"
            + _td(str(s["name"]), str(s["name"]))
            + _td(str(s["process"]), str(s["process"]), "t hot" if hot else "t")
            + _td(fmt_seconds(s["total_ns"]), s["total_ns"])
            + _td(fmt_seconds(s["median_ns"]), s["median_ns"])
            + _td("-" if ratio is None else f"{ratio:.2f}×", ratio or 0, "hot" if hot else "")
            + _td(str(s["processes"]), s["processes"])
            + "</tr>"
        )
    return _table("stragglers-table", headers, rows, search=False)


def _stragglers_from_report(cross: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The straggler rows from the report's ``cross_process`` (no events at hand)."""
    out = []
    for c in cross:
        slow = c["slowest"]
        median = c["median_total_ns"]
        out.append(
            {
                "name": c["name"],
                "process": _process_name(slow),
                "rank": slow.get("rank"),
                "total_ns": c["max_total_ns"],
                "median_ns": median,
                "ratio": c["max_total_ns"] / median if median else None,
                "processes": c["processes"],
            }
        )
    out.sort(key=lambda r: -(r["ratio"] or 0.0))
    return out


def _process_name(p: Mapping[str, Any]) -> str:
    from .htmlviews import process_label

    return process_label(p)


def diff_table(scopes: Sequence[Mapping[str, Any]]) -> str:
    headers = [("Scope", "text"), ("Verdict", "text"), ("Change", "num"), ("95% CI", "num")]
    headers += [("p-value", "num"), ("Base count", "num"), ("New count", "num")]
    headers += [("Base mean", "num"), ("New mean", "num"), ("Base p50", "num")]
    headers += [("New p50", "num"), ("Base p99", "num"), ("New p99", "num")]
    rows = []
    for r in scopes[:MAX_TABLE_ROWS]:
        b, n = r.get("base"), r.get("new")
        verdict = str(r["verdict"])
        change = r.get("change")
        ci = r.get("change_ci")
        p = r.get("p_value")
        cells = [
            f'<td class="name" data-v="{esc(r["name"])}">{esc(r["name"])}</td>',
            _td(verdict, verdict, f"t verdict {verdict}"),
            _td(fmt_change(change), change if change is not None else ""),
            _td(
                "-" if not ci else f"{fmt_change(ci[0])} … {fmt_change(ci[1])}",
                ci[0] if ci else "",
            ),
            _td(_p_value(p), "" if p is None else p),
        ]
        for key in ("count",):
            for side in (b, n):
                cells.append(_td("-" if side is None else str(side[key]), _side(side, key)))
        for key in ("mean_ns", "p50_ns", "p99_ns"):
            for side in (b, n):
                text = "-" if side is None else fmt_duration(side[key])
                cells.append(_td(text, _side(side, key)))
        rows.append(f'<tr class="{verdict}">' + "".join(cells) + "</tr>")
    return _table("diff-table", headers, rows, search=True) + _cut_note(
        len(rows), len(scopes), "scopes"
    )


def _p_value(p: float | None) -> str:
    if p is None:
        return "-"
    return "< 1e-300" if p == 0 else f"{p:.2g}"


def _marks(stats: Mapping[str, Any] | None, run: int, prefix: str) -> list[dict[str, Any]]:
    """The p50 and p99 lines of a distribution (``run``: whose colour)."""
    if stats is None:
        return []
    return [
        {
            "label": f"{prefix}{q} {fmt_duration(stats[f'{q}_ns'])}",
            "ns": stats[f"{q}_ns"],
            "run": run,
        }
        for q in ("p50", "p99")
    ]


def _side(side: Mapping[str, Any] | None, key: str) -> float | str:
    return "" if side is None else float(side[key])


# -- charts' data ------------------------------------------------------------------------


def icicle(tree: Sequence[Mapping[str, Any]], max_nodes: int = MAX_TREE_NODES) -> dict[str, Any]:
    """The call tree as parallel arrays for plotly's icicle, in depth-first order.

    At most ``max_nodes`` nodes: the largest by total, each with its ancestors. ``value``
    is a node's total, raised where needed to the sum of its children's (plotly's
    ``branchvalues: "total"`` needs that; events of several threads can overlap).
    """
    nodes = list(tree)
    totals = [int(r["total_ns"]) for r in nodes]
    if len(nodes) > max_nodes:
        order = sorted(range(len(nodes)), key=lambda i: -totals[i])[:max_nodes]
        chosen = set(order)
    else:
        chosen = set(range(len(nodes)))
    index: dict[tuple[str, ...], int] = {}
    keep: list[int] = []
    parent: list[int] = []
    for i, r in enumerate(nodes):
        if i not in chosen:
            continue
        path = tuple(r["path"])
        up = index.get(path[:-1], -1) if len(path) > 1 else -1
        if len(path) > 1 and up < 0:
            continue  # its parent was cut: so is it
        index[path] = len(keep)
        keep.append(i)
        parent.append(up)
    value = [max(0, totals[i]) for i in keep]
    child_sum = [0] * len(keep)
    for k in range(len(keep) - 1, -1, -1):  # children come after their parent
        value[k] = max(value[k], child_sum[k])
        if parent[k] >= 0:
            child_sum[parent[k]] += value[k]
    fields = ("name", "count", "errors", "total_ns", "self_ns", "p50_ns", "p99_ns")
    out: dict[str, Any] = {f: [nodes[i][f] for i in keep] for f in fields}
    out["parent"] = parent
    out["value"] = value
    out["nodes"] = len(nodes)
    return out


def _names_by_total(scopes: Sequence[Mapping[str, Any]]) -> list[str]:
    """Scope names, largest total first, each once (rows ``--by`` repeat them)."""
    seen: dict[str, int] = {}
    for r in scopes:
        seen[r["name"]] = seen.get(r["name"], 0) + int(r["total_ns"])
    return sorted(seen, key=lambda n: -seen[n])


# -- the page ----------------------------------------------------------------------------


def _card(label: str, value: str, ident: str) -> str:
    return (
        f'<div class="card" id="card-{ident}"><div class="label">{esc(label)}</div>'
        f'<div class="value">{esc(value)}</div></div>'
    )


def _section(ident: str, title: str, body: str, note: str = "") -> str:
    explain = f'<p class="explain">{esc(note)}</p>' if note else ""
    return f'<section id="{ident}"><h2>{esc(title)}</h2>{explain}{body}</section>'


_DIST_CONTROLS = (
    '<div class="controls"><label>Scope <select id="dist-select"></select></label> '
    '<label>Show <select id="dist-view"><option value="hist">events per bin</option>'
    '<option value="log">events per bin, log scale</option>'
    '<option value="cdf">cumulative share (CDF)</option></select></label></div>'
)


def _chart(ident: str, height: int) -> str:
    return f'<div class="chart" id="{ident}" style="height:{height}px"></div>'


def _ranks(processes: Sequence[Mapping[str, Any]]) -> str:
    ranks = sorted({p["rank"] for p in processes if p.get("rank") is not None})
    if not ranks:
        return "-"
    if len(ranks) > 1 and ranks == list(range(ranks[0], ranks[-1] + 1)):
        return f"{len(ranks)} ({ranks[0]}–{ranks[-1]})"
    return f"{len(ranks)} ({', '.join(map(str, ranks[:8]))}{', …' if len(ranks) > 8 else ''})"


def page(title: str, heading: str, subtitle: str, body: str, payload: Mapping[str, Any]) -> str:
    """The whole document: style, body, data block, plotly.js and the page's script."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No request may leave the page: the policy blocks any that a bug would make.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
        "img-src data: blob:; font-src data:; connect-src 'none'\">"
        f"<title>{esc(title)}</title><style>{_static('page.css')}</style></head>"
        f'<body><header><h1>{esc(heading)}</h1><p class="sub">{esc(subtitle)}</p></header>'
        f"<main>{body}</main>"
        f"<footer>Made by liteprof {esc(__version__)}. This page works offline.</footer>"
        f'<script type="application/json" id="liteprof-data">{json_block(payload)}</script>'
        f"<script>{plotly_js()}</script><script>{_static('page.js')}</script>"
        "</body></html>\n"
    )


class HtmlRenderer(Renderer):
    """One self-contained page. The distributions, the per-process view and the timeline
    need the events: pass them (``events`` for a report, ``base`` and ``new`` for a diff);
    without them the page shows what the report object holds."""

    kinds: ClassVar[frozenset[str]] = frozenset({"report", "diff"})

    def __init__(
        self,
        events: Events | None = None,
        *,
        base: Events | None = None,
        new: Events | None = None,
    ) -> None:
        self.events = events
        self.base = base
        self.new = new

    def render(self, data: Result, kind: str = "report") -> str:
        plotly_js()  # fail before any work when the extra is missing
        if kind == "diff":
            return self._diff(data)
        return self._report(data)

    def _report(self, report: Mapping[str, Any]) -> str:
        from . import htmlviews as views

        ev = self.events
        scopes = report["scopes"]
        processes = report.get("processes") or []
        names = _names_by_total(scopes)
        wall = report.get("wall_ns")
        errors = sum(int(r["errors"]) for r in scopes)
        cards = [
            _card("Events", f"{report['records']:,}", "events"),
            _card("Wall time", "unknown" if wall is None else fmt_duration(wall), "wall"),
            _card("Processes", str(len(processes)) if processes else "-", "processes"),
            _card("Ranks", _ranks(processes), "ranks"),
            _card("Scopes", f"{len(names):,}", "scopes"),
            _card("Errors", f"{errors:,}", "errors"),
            _card("Skipped records", f"{report.get('skipped', 0):,}", "skipped"),
        ]
        payload: dict[str, Any] = {"kind": "report", "colours": names[: views.N_COLOURS]}
        tree = report.get("tree")
        sections = [f'<div class="cards">{"".join(cards)}</div>']
        sections.append(
            _section(
                "scopes",
                "Scopes",
                scopes_table(scopes),
                "Click a column to sort; type to filter. Self time leaves out the scopes "
                "nested directly inside.",
            )
        )
        if tree:
            payload["tree"] = icicle(tree)
            cut = payload["tree"]["nodes"] - len(payload["tree"]["name"])
            sections.append(
                _section(
                    "tree",
                    "Call tree",
                    _chart("tree-chart", 420)
                    + (f'<p class="note">{cut} smallest nodes left out.</p>' if cut else ""),
                    "Each box is a path of nested scopes, as wide as its total time; "
                    "click one to zoom in, hover for self and total time.",
                )
            )
        if ev is not None:
            payload["dist"] = views.distributions([ev], names)
        if payload.get("dist"):
            by_name = {r["name"]: r for r in scopes if "pid" not in r}
            for s in payload["dist"]["scopes"]:
                r = by_name.get(s["name"])
                s["marks"] = [] if r is None else _marks(r, 0, "")
            sections.append(
                _section(
                    "distributions",
                    "Duration distributions",
                    _DIST_CONTROLS + _chart("dist-chart", 360),
                    "How long each event of a scope took, on a log scale, with p50 and p99.",
                )
            )
        matrix = views.process_matrix(ev, names) if ev is not None else None
        stragglers = (
            matrix["stragglers"]
            if matrix
            else _stragglers_from_report(report.get("cross_process") or [])
        )
        proc_body = processes_table(processes) if processes else ""
        if stragglers:
            proc_body += "<h3>Stragglers: the slowest process of each scope</h3>"
            proc_body += stragglers_table(stragglers)
        if matrix:
            payload["heat"] = {k: matrix[k] for k in ("processes", "scopes", "totals", "ratio")}
            height = max(220, min(900, 90 + 22 * len(matrix["processes"])))
            proc_body += "<h3>Process × scope: total over the scope's median</h3>"
            proc_body += _chart("heat-chart", height)
        if proc_body:
            sections.append(
                _section(
                    "processes",
                    "Processes and ranks",
                    proc_body,
                    "A process far above the median of a scope (a red cell) is a straggler.",
                )
            )
        line = views.timeline(ev, names) if ev is not None else None
        if line:
            payload["timeline"] = line
            window = line["window_ns"][1] - line["window_ns"][0]
            about = line["about"]
            what = (
                f"{fmt_duration(window)} around the slowest {about}"
                if about
                else f"the whole run ({fmt_duration(window)})"
            )
            shown = f"{line['shown']:,} events"
            if line["shown"] < line["in_window"]:
                shown = f"the longest {shown} of {line['in_window']:,} (the rest are too "
                shown += "short to see at this scale)"
            height = max(200, min(900, 80 + 18 * max(line["row_offset"] + [0]) + 60))
            sections.append(
                _section(
                    "timeline",
                    "Timeline",
                    f'<p class="note" id="timeline-what">{esc(what)}: {esc(shown)}.</p>'
                    + _chart("timeline-chart", height),
                    "One row per thread (and asyncio task), nested scopes below their parent.",
                )
            )
        if ev is None:
            sections.append(
                '<p class="note">Distributions, the process view and the timeline are drawn '
                "from the events: <code>liteprof report --format html</code> includes them.</p>"
            )
        sources = ", ".join(one_line(s) for s in report.get("sources", []))
        return page(
            f"liteprof report: {sources}",
            "liteprof report",
            sources,
            "".join(sections),
            payload,
        )

    def _diff(self, diff: Mapping[str, Any]) -> str:
        from . import htmlviews as views

        rows = diff["scopes"]
        counts = {v: 0 for v in ("slower", "faster", "same", "added", "removed")}
        for r in rows:
            counts[str(r["verdict"])] = counts.get(str(r["verdict"]), 0) + 1
        cards = [_card("Scopes", str(len(rows)), "scopes")]
        cards += [_card(v.capitalize(), str(c), v) for v, c in counts.items()]
        threshold = diff.get("threshold")
        alpha = diff.get("alpha")
        settings = (
            f"A scope is “same” unless the {diff.get('test', 'test')} is significant "
            f"(alpha {alpha:g}) and its mean moved by more than {threshold:g}%."
            if threshold is not None and alpha is not None
            else ""
        )
        changed = [r for r in rows if r.get("change") is not None][:60]
        payload: dict[str, Any] = {
            "kind": "diff",
            "change": {
                "name": [r["name"] for r in changed],
                "change": [r["change"] for r in changed],
                "ci": [r.get("change_ci") for r in changed],
                "verdict": [r["verdict"] for r in changed],
            },
        }
        sections = [f'<div class="cards">{"".join(cards)}</div>']
        sections.append(
            _section(
                "changes",
                "Change of each scope's mean",
                _chart("change-chart", max(220, min(1200, 80 + 22 * len(changed)))),
                settings + " Bars: new/base − 1 with its 95% interval.",
            )
        )
        sections.append(_section("scopes", "Scopes", diff_table(rows), settings))
        if self.base is not None and self.new is not None:
            order = [r["name"] for r in rows]
            dist = views.distributions([self.base, self.new], order)
            if dist:
                by_name = {r["name"]: r for r in rows}
                for s in dist["scopes"]:
                    r = by_name[s["name"]]
                    s["marks"] = _marks(r.get("base"), 0, "base ") + _marks(r.get("new"), 1, "new ")
                payload["dist"] = dist
                sections.append(
                    _section(
                        "distributions",
                        "Duration distributions, base and new",
                        _DIST_CONTROLS + _chart("dist-chart", 360),
                        "Each run's event durations of a scope on a log scale.",
                    )
                )
        base = ", ".join(one_line(s) for s in diff.get("base", []))
        new = ", ".join(one_line(s) for s in diff.get("new", []))
        return page(
            f"liteprof diff: {base} → {new}",
            "liteprof diff",
            f"base: {base} · new: {new}",
            "".join(sections),
            payload,
        )


def render_html(
    data: Result,
    kind: str,
    *,
    events: Events | None = None,
    base: Events | None = None,
    new: Events | None = None,
) -> str:
    """The page of a report (with its ``events``) or a diff (with ``base`` and ``new``)."""
    return HtmlRenderer(events, base=base, new=new).render(data, kind)
