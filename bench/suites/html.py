"""HTML page: its size, the time to write it, and the time to open it in Chromium.

Four children (ranks 0-3, rank 2 a straggler) record 1M and 10M events in all with the
C core, nested as an engine's steps are (``Step:Model`` > ``Model:Forward`` > four
``Model:Attention`` and ``Model:MLP``, and a ``Step:Schedule``). Then, from fresh
processes: ``liteprof report --format html -o`` against ``--format json -o`` (the page's
cost over the report's own), and the page's size against plotly.js's. The open time is
measured in headless Chromium (``tests/browser.py``: Debian's chromium and chromedriver,
selenium, the network cut), a fresh browser for every open, interleaved with a page that
holds plotly.js and nothing else (the floor: what parsing plotly.js costs on this
machine): navigation start to the last chart drawn. Without Chromium or selenium the open
times are SKIP.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

from ..context import Context
from ..results import Target

NAME = "html"
TITLE = "HTML page: size, writing and opening"
MB = 1_000_000
SIZE_LIMIT_MB = 8.0
OPEN_LIMIT = 1.5
"""The page's open time over the plotly-only page's (min of the opens)."""
WRITE_LIMIT = 3.0
"""``--format html`` over ``--format json`` (min of the runs)."""


def _child_gen(argv: list[str]) -> dict[str, Any]:
    """Record about ``--events`` events as rank ``--rank`` into ``--dir``."""
    ap = argparse.ArgumentParser(prog="bench.suites.html gen")
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--rank", type=int, required=True)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args(argv)
    os.environ["RANK"] = str(args.rank)  # read when the log is made
    import liteprof

    liteprof.enable(args.dir)
    step, forward, attention, mlp, schedule = (
        liteprof.Scope(n)
        for n in ("Step:Model", "Model:Forward", "Model:Attention", "Model:MLP", "Step:Schedule")
    )
    work = range(40 if args.rank == 2 else 10)
    for _ in itertools.repeat(None, args.events // 11):
        with schedule:
            pass
        with step, forward:
            for _ in range(4):
                with attention:
                    for _ in work:
                        pass
                with mlp:
                    pass
    liteprof.disable()
    return {"backend": liteprof.BACKEND}


def _child_open(argv: list[str]) -> dict[str, Any]:
    """Open one page in a fresh headless Chromium: its load and drawn times (ms)."""
    sys.path.insert(0, os.getcwd())
    from tests import browser

    with browser.chromium() as driver:
        opened = browser.open_page(driver, argv[0])
    fetched = [u for u in opened.requests if u != opened.url and not u.startswith("data:")]
    errors = [e["message"] for e in opened.console if e["level"] == "SEVERE"]
    return {
        "load_ms": opened.load_ms,
        "drawn_ms": opened.drawn_ms,
        "fetched": fetched,
        "errors": errors,
    }


def child(argv: list[str]) -> dict[str, Any]:
    if argv[:1] == ["gen"]:
        return _child_gen(argv[1:])
    if argv[:1] == ["open"]:
        return _child_open(argv[1:])
    raise SystemExit(f"bench.suites.html: unknown child {argv[:1]}")


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _browser_ready() -> str | None:
    """Why the open times cannot be measured here; ``None`` where they can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the test extra)"
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return "Debian's chromium and chromium-driver are not installed"
    if not os.path.exists(os.path.join(os.getcwd(), "tests", "browser.py")):
        return "run from the checkout's root (tests/browser.py drives Chromium)"
    return None


def run(ctx: Context) -> dict[str, Any]:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        ctx.notes.append("html: plotly is not installed (pip install 'liteprof[html]'): skipped")
        return {"plotly_bytes": 0, "no_browser": "plotly is not installed", "sizes": []}

    sizes = [1_000_000] if ctx.quick else [1_000_000, 10_000_000]
    opens = 3 if ctx.quick else 5
    writes = 2 if ctx.quick else 3
    no_browser = _browser_ready()
    root = ctx.fresh_dir("html")
    os.makedirs(root)
    bare = os.path.join(root, "plotly-only.html")
    with open(bare, "w", encoding="utf-8") as fh:
        fh.write(
            "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><script>"
            + get_plotlyjs()
            + "</script><script>window.liteprofDrawn = performance.now();"
            "document.documentElement.setAttribute('data-drawn', '0');</script></body></html>"
        )
    plotly_bytes = len(get_plotlyjs().encode("utf-8"))
    out: dict[str, Any] = {"plotly_bytes": plotly_bytes, "no_browser": no_browser, "sizes": []}
    liteprof_cmd = [sys.executable, "-m", "liteprof", "report"]
    try:
        for events in sizes:
            d = os.path.join(root, f"log-{events}")
            for rank in range(4):
                ctx.run_child(
                    __name__, ["gen", "--events", str(events // 4), "--rank", str(rank), "--dir", d]
                )
            page = os.path.join(root, f"page-{events}.html")
            report = os.path.join(root, f"report-{events}.json")
            html_s, json_s = [], []
            for _ in range(writes):  # interleaved, so that load hits both alike
                html_s.append(_timed([*liteprof_cmd, d, "--format", "html", "-o", page]))
                json_s.append(_timed([*liteprof_cmd, d, "--format", "json", "-o", report]))
            with open(report, encoding="utf-8") as fh:
                records = json.load(fh)["records"]
            entry: dict[str, Any] = {
                "nominal": events,
                "events": records,
                "page_bytes": os.path.getsize(page),
                "html_s": html_s,
                "json_s": json_s,
                "opens": [],
                "bare_opens": [],
            }
            if no_browser is None:
                for _ in range(opens):
                    entry["opens"].append(ctx.run_child(__name__, ["open", page]))
                    entry["bare_opens"].append(ctx.run_child(__name__, ["open", bare]))
            out["sizes"].append(entry)
            shutil.rmtree(d, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def _drawn(entry: dict[str, Any], key: str) -> list[float]:
    return [float(o["drawn_ms"]) for o in entry[key] if o.get("drawn_ms") is not None]


def _label(events: int) -> str:
    return f"{events / 1e6:.0f}M" if events >= 1_000_000 else f"{events:,}"


def targets(results: dict[str, Any]) -> list[Target]:
    out = []
    for entry in results["sizes"]:
        tag = _label(entry["nominal"]).lower()
        out.append(
            Target(
                f"html_page_mb_{tag}",
                f"html: page size of a {_label(entry['nominal'])}-event log, MB",
                entry["page_bytes"] / MB,
                "<=",
                SIZE_LIMIT_MB,
            )
        )
        drawn, bare = _drawn(entry, "opens"), _drawn(entry, "bare_opens")
        out.append(
            Target(
                f"html_open_vs_plotly_{tag}",
                f"html: open to last chart drawn / a plotly.js-only page ({tag}, min of opens)",
                min(drawn) / min(bare) if drawn and bare else None,
                "<=",
                OPEN_LIMIT,
                "" if drawn else str(results.get("no_browser") or "not measured"),
            )
        )
        out.append(
            Target(
                f"html_write_vs_json_{tag}",
                f"html: `report --format html` / `--format json` ({tag}, min of runs)",
                min(entry["html_s"]) / min(entry["json_s"]),
                "<=",
                WRITE_LIMIT,
            )
        )
    return out


def summary(results: dict[str, Any]) -> list[str]:
    lines = ["html page:"]
    for e in results["sizes"]:
        drawn, bare = _drawn(e, "opens"), _drawn(e, "bare_opens")
        opened = (
            f"open {min(drawn):.0f} ms (median {statistics.median(drawn):.0f}), plotly.js alone "
            f"{min(bare):.0f} ms"
            if drawn and bare
            else f"open: {results.get('no_browser')}"
        )
        lines.append(
            f"  {_label(e['nominal']):>4} events: {e['page_bytes'] / MB:.2f} MB, written in "
            f"{min(e['html_s']):.2f} s (json {min(e['json_s']):.2f} s); {opened}"
        )
    return lines


def markdown(results: dict[str, Any]) -> list[str]:
    lines = [f"## {TITLE}", ""]
    lines.append(
        "`liteprof report LOG --format html -o page.html` on logs of four ranks (C core), "
        "from a fresh process, against `--format json -o` (min of the runs, interleaved). "
        "Open: a fresh headless Chromium per open, network cut, from navigation start to "
        "the last chart drawn, against a page that holds only plotly.js "
        f"({results['plotly_bytes'] / MB:.2f} MB), interleaved; min and median of the opens."
    )
    lines.append("")
    lines.append(
        "| events | page MB | write html s | write json s | open ms (min) | open ms (median) "
        "| plotly.js only ms (min) | ratio |"
    )
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for e in results["sizes"]:
        drawn, bare = _drawn(e, "opens"), _drawn(e, "bare_opens")
        cells = ["n/a"] * 4
        if drawn and bare:
            cells = [
                f"{min(drawn):.0f}",
                f"{statistics.median(drawn):.0f}",
                f"{min(bare):.0f}",
                f"{min(drawn) / min(bare):.2f}x",
            ]
        lines.append(
            f"| {e['events']:,} | {e['page_bytes'] / MB:.2f} | {min(e['html_s']):.2f} | "
            f"{min(e['json_s']):.2f} | " + " | ".join(cells) + " |"
        )
    lines.append("")
    if results.get("no_browser"):
        lines += [f"Open times not measured: {results['no_browser']}.", ""]
    return lines
