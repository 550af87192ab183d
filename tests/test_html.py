"""The HTML report and diff (``--format html -o FILE``), opened in real headless Chromium.

Four ranks record the same steps with a fixed clock; rank 2's attention takes five times
as long, so it is the straggler. Scope names that are markup (``<script>``, ``</script>``,
an ``<img onerror>``, entities, a lone surrogate, control characters) must stay text
everywhere. The page is opened with the network cut (``tests/browser.py``): it must make
no request but for the file itself, log no console error, show the scopes, processes and
the straggler in its text, and draw its charts at a real size. Screenshots are saved
beside each page.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from liteprof.renderers import formats, render
from liteprof.renderers.base import one_line
from liteprof.renderers.html import json_block, plotly_js

from . import browser
from .helpers import cli, log_files, read, run_python

HOSTILE = [
    "<script>window.__pwned=1</script>",
    "</script><img src=x onerror=window.__pwned=2>",
    "<b>bold</b> & &amp; &lt;",
    "bad\udcff\x1b[31m\u2028name",
]
SCOPES = ["Step:Model", "Model:Forward", "Model:Attention", "Step:Schedule", *HOSTILE]
STRAGGLER = 2

CHILD = """
import os, liteprof
from liteprof import testing

rank = int(os.environ["RANK"])
slow = float(os.environ.get("SLOW", "1"))
now = [1_000_000_000]
testing.set_clock(lambda: now[0])

def tick(ns):
    now[0] += int(ns)

HOSTILE = {hostile!r}
for step in range(60):
    with liteprof.scope("Step:Schedule"):
        tick(2000 + step)
    with liteprof.scope("Step:Model"):
        with liteprof.scope("Model:Forward"):
            for _ in range(2):
                with liteprof.scope("Model:Attention"):
                    base = {straggler_ns} if rank == {straggler} else 10_000
                    tick(slow * base + 37 * (step % 11))
            tick(1000)
        for name in HOSTILE:
            with liteprof.scope(name):
                tick(300 + step % 5)
liteprof.flush()
"""


def record(directory: str, slow: float = 1.0) -> str:
    """Four ranks' logs in ``directory``."""
    code = CHILD.format(hostile=HOSTILE, straggler=STRAGGLER, straggler_ns=50_000)
    for rank in range(4):
        run_python(code, LITEPROF_LOG=directory, RANK=str(rank), SLOW=str(slow))
    assert len(log_files(directory)) == 4
    return directory


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("html-logs")
    return {
        "base": record(str(root / "base")),
        "new": record(str(root / "new"), slow=1.6),
    }


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with browser.chromium() as d:
        yield d


def page_text(driver: Any) -> str:
    return str(driver.find_element("tag name", "body").text)


def assert_clean(opened: browser.Opened, driver: Any) -> None:
    """No request left the file, nothing went to the console, no name ran as code."""
    assert opened.requests and opened.requests[0] == opened.url, opened.requests
    fetched = [u for u in opened.requests if u != opened.url and not u.startswith("data:")]
    assert fetched == [], f"the page requested {fetched}"
    noisy = [e for e in opened.console if e["level"] in ("SEVERE", "WARNING")]
    assert noisy == [], noisy
    assert driver.execute_script("return window.__pwned === undefined")


def chart_sizes(driver: Any) -> dict[str, tuple[int, int]]:
    """Each drawn chart's id and the size of its plot (plotly's ``svg.main-svg``)."""
    sizes = driver.execute_script(
        "var out = {};"
        "document.querySelectorAll('.chart').forEach(function (c) {"
        "  var svg = c.querySelector('svg.main-svg');"
        "  if (svg) { var r = svg.getBoundingClientRect(); out[c.id] = [r.width, r.height]; }"
        "});"
        "return out;"
    )
    return {k: (int(v[0]), int(v[1])) for k, v in sizes.items()}


def test_report_page_in_chromium(logs: dict[str, str], driver: Any, tmp_path: Any) -> None:
    out = tmp_path / "report.html"
    proc = cli("report", logs["base"], "--format", "html", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    opened = browser.open_page(driver, str(out))
    browser.screenshot(driver, str(tmp_path / "report.png"))
    assert os.path.getsize(tmp_path / "report.png") > 10_000
    assert_clean(opened, driver)

    text = page_text(driver)
    for name in SCOPES:
        assert one_line(name) in text, name
    report = read(logs["base"])
    for p in report["processes"]:
        assert str(p["pid"]) in text
    assert "Events\n2,160" in text  # the summary cards
    assert "Ranks\n4 (0–3)" in text
    # The straggler: rank 2 is the slowest process of the attention scope, well above
    # the median, and its row leads the stragglers table.
    rows = driver.find_elements("css selector", "#stragglers-table tbody tr")
    first = rows[0].find_elements("tag name", "td")
    assert first[0].text == "Model:Attention"
    assert first[1].text.startswith(f"rank {STRAGGLER} ·")
    assert "hot" in (first[1].get_attribute("class") or "")
    assert float(first[4].text.rstrip("×")) == pytest.approx(5.0, rel=0.05)

    sizes = chart_sizes(driver)
    assert set(sizes) == {"tree-chart", "dist-chart", "heat-chart", "timeline-chart"}, sizes
    for ident, (w, h) in sizes.items():
        assert w > 300 and h > 150, (ident, w, h)
    # The icicle has a box per node of the call tree, the heat map one row per process.
    boxes = driver.find_elements("css selector", "#tree-chart g.slice")
    assert len(boxes) >= 1 + len(SCOPES)
    heat_rows = driver.execute_script(
        "return document.getElementById('heat-chart').data[0].z.length"
    )
    assert heat_rows == 4


def test_tables_sort_and_filter(logs: dict[str, str], driver: Any, tmp_path: Any) -> None:
    out = tmp_path / "report.html"
    assert cli("report", logs["base"], "--format", "html", "-o", str(out)).returncode == 0
    browser.open_page(driver, str(out))

    def names() -> list[str]:
        cells = driver.find_elements("css selector", "#scopes-table tbody tr:not([hidden]) td")
        return [c.text for c in cells[::11]]

    assert names()[0] == "Step:Model"  # largest total first
    header = driver.find_elements("css selector", "#scopes-table th")[3]  # Total (s)
    header.click()
    assert names()[0] == "Step:Model"
    header.click()  # ascending: one of the hostile names (smallest totals) first
    assert names()[0] in [one_line(n) for n in HOSTILE]
    box = driver.find_element("css selector", "input.filter[data-table='scopes-table']")
    box.send_keys("attention")
    assert names() == ["Model:Attention"]
    box.clear()
    box.send_keys("<script>")
    assert names() == ["<script>window.__pwned=1</script>"]


def test_diff_page_in_chromium(logs: dict[str, str], driver: Any, tmp_path: Any) -> None:
    out = tmp_path / "diff.html"
    proc = cli("diff", logs["base"], logs["new"], "--format", "html", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    opened = browser.open_page(driver, str(out))
    browser.screenshot(driver, str(tmp_path / "diff.png"))
    assert_clean(opened, driver)
    text = page_text(driver)
    for name in SCOPES:
        assert one_line(name) in text, name
    verdicts = {}
    for row in driver.find_elements("css selector", "#diff-table tbody tr"):
        cells = row.find_elements("tag name", "td")
        verdicts[cells[0].text] = (cells[1].text, cells[2].text)
    diff = json.loads(cli("diff", logs["base"], logs["new"], "--format", "json").stdout)
    for row in diff["scopes"]:
        verdict, change = verdicts[one_line(row["name"])]
        assert verdict == row["verdict"]
        assert change == f"{100 * row['change']:+.1f}%"
    assert verdicts["Model:Attention"][0] == "slower"
    assert verdicts["Step:Schedule"][0] == "same"
    sizes = chart_sizes(driver)
    assert set(sizes) == {"change-chart", "dist-chart"}
    for ident, (w, h) in sizes.items():
        assert w > 300 and h > 150, (ident, w, h)


def test_names_stay_text_in_the_file(logs: dict[str, str], tmp_path: Any) -> None:
    out = tmp_path / "report.html"
    assert cli("report", logs["base"], "--format", "html", "-o", str(out)).returncode == 0
    page = out.read_text(encoding="utf-8")
    # Our own markup has no <img>; the only <script> elements are the page's three.
    assert "<img" not in page
    assert len(re.findall(r"<script\b", page)) == 3
    assert len(re.findall(r"</script>", page)) == 3
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    block = page.split('id="liteprof-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and ">" not in block and "&" not in block
    data = json.loads(block)
    assert "<script>window.__pwned=1</script>" in data["colours"] + [
        s["name"] for s in data["dist"]["scopes"]
    ]


def test_json_block_escapes_what_could_close_it() -> None:
    payload: dict[str, Any] = {
        "a": "</script><!-- \u2028 \u2029 & <b>",
        "b": ["\udcff"],
        "c": [1.5, None],
    }
    block = json_block(payload)
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in block
    block.encode("utf-8")  # no lone surrogate left
    back = json.loads(block)
    assert back["a"] == one_line(payload["a"])
    assert back["b"] == [one_line("\udcff")]
    assert back["c"] == [1.5, None]


def test_registry_offers_html_for_report_and_diff(logs: dict[str, str]) -> None:
    assert "html" in formats("report") and "html" in formats("diff")
    # Without the events (the generic entry point), the page holds what the report has.
    page = render(read(logs["base"]), "html", "report")
    assert page.startswith("<!DOCTYPE html>")
    assert plotly_js() in page
    assert "Stragglers" in page and "rank 2 · pid" in page  # from cross_process
    assert 'id="timeline-chart"' not in page


def test_html_needs_a_file_and_says_so(logs: dict[str, str]) -> None:
    proc = cli("report", logs["base"], "--format", "html")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "-o FILE" in proc.stderr
    proc = cli("diff", logs["base"], logs["new"], "--format", "html")
    assert proc.returncode == 2 and "-o FILE" in proc.stderr


def test_missing_plotly_is_one_line(logs: dict[str, str], tmp_path: Any) -> None:
    # A plotly that cannot be imported, first on the path: as if the extra were missing.
    fake = tmp_path / "fake" / "plotly"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no plotly here')\n")
    out = tmp_path / "x.html"
    proc = cli(
        "report", logs["base"], "--format", "html", "-o", str(out), PYTHONPATH=str(fake.parent)
    )
    assert proc.returncode == 2
    assert (
        proc.stderr == "liteprof: error: --format html needs plotly: pip install 'liteprof[html]'\n"
    )
    assert not out.exists()


def test_output_file_for_text_formats(logs: dict[str, str], tmp_path: Any) -> None:
    out = tmp_path / "r.json"
    proc = cli("report", logs["base"], "--format", "json", "-o", str(out))
    assert proc.returncode == 0 and proc.stdout == ""
    stdout = cli("report", logs["base"], "--format", "json").stdout
    assert out.read_text(encoding="utf-8") == stdout
    proc = cli("report", logs["base"], "-o", str(tmp_path / "missing" / "r.txt"))
    assert proc.returncode == 2 and proc.stderr.startswith("liteprof: error: cannot write ")


def test_run_writes_the_page(tmp_path: Any) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        "import liteprof\n"
        "for i in range(50):\n"
        "    with liteprof.scope('Step:Work'):\n"
        "        with liteprof.scope('Work:Inner'):\n"
        "            pass\n"
    )
    out = tmp_path / "run.html"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "liteprof",
            "run",
            "--html",
            str(out),
            "--",
            sys.executable,
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("LITEPROF_")},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Step:Work" in proc.stdout  # the usual report, as well
    page = out.read_text(encoding="utf-8")
    assert "Work:Inner" in page and 'id="tree-chart"' in page


def test_a_large_log_gives_a_bounded_page(tmp_path: Any) -> None:
    """Many events and many names: the page holds aggregates and cut tables, so its
    data stays small whatever the log's size."""
    d = str(tmp_path / "big")
    run_python(
        """
        import liteprof
        S = [liteprof.Scope(f"Many:{i}") for i in range(3000)]
        OUTER = liteprof.Scope("Step:Outer")
        for step in range(100):
            with OUTER:
                for s in S:
                    with s:
                        pass
        """,
        LITEPROF_LOG=d,
    )
    out = tmp_path / "big.html"
    assert cli("report", d, "--format", "html", "-o", str(out)).returncode == 0
    page = out.read_text(encoding="utf-8")
    data_and_markup = len(page.encode("utf-8")) - len(plotly_js().encode("utf-8"))
    assert data_and_markup < 2_000_000, data_and_markup
    assert "2000 of 3001 scopes shown" in page
    data = json.loads(page.split('id="liteprof-data">', 1)[1].split("</script>", 1)[0])
    assert len(data["tree"]["name"]) <= 2000
    assert len(data["dist"]["scopes"]) <= 40
    assert len(data["timeline"]["bars"]["x0"]) <= 4000


def test_text_logs_give_a_page_without_a_timeline(driver: Any, tmp_path: Any) -> None:
    log = tmp_path / "vllm.txt"
    log.write_text(
        "".join(f"Step:Model|{1000 * (i % 7 + 1)}\nModel:Forward|{500 + i}\n" for i in range(200))
    )
    out = tmp_path / "text.html"
    proc = cli("report", str(log), "--format", "html", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    opened = browser.open_page(driver, str(out))
    assert_clean(opened, driver)
    text = page_text(driver)
    assert "Step:Model" in text and "Wall time\nunknown" in text
    assert set(chart_sizes(driver)) == {"tree-chart", "dist-chart"}


def test_aggregates_agree_with_the_events(logs: dict[str, str]) -> None:
    """What the page draws from the events, checked against a plain count of them."""
    import numpy as np

    from liteprof.log.reader import read_logs
    from liteprof.renderers import htmlviews as views

    ev = read_logs([logs["base"]])
    names = [r["name"] for r in read(logs["base"])["scopes"]]
    dist = views.distributions([ev], names)
    assert dist is not None
    edges = np.array(dist["edges"])
    by_name = {ev.names[i]: i for i in range(len(ev.names))}
    for s in dist["scopes"]:
        durs = ev.dur[ev.name == by_name[s["name"]]]
        counts = s["counts"][0]
        assert sum(counts) == durs.size
        # Each duration lies in its bin (edges are rounded to 6 digits in the page).
        lo, hi = edges[s["lo"]], edges[s["lo"] + len(counts)]
        assert lo * (1 - 1e-5) <= durs.min() and durs.max() <= hi * (1 + 1e-5)
        expect = np.histogram(durs, bins=edges[s["lo"] : s["lo"] + len(counts) + 1])[0]
        assert np.abs(expect - np.array(counts)).sum() <= 0.01 * durs.size + 1

    m = views.process_matrix(ev, names)
    assert m is not None and len(m["processes"]) == 4
    for p, label in enumerate(m["processes"]):
        pid = int(label.split("pid ")[1].split()[0])
        proc = next(i for i, q in enumerate(ev.processes) if q["pid"] == pid)
        for s, name in enumerate(m["scopes"]):
            mine = (ev.proc == proc) & (ev.name == by_name[name])
            assert m["totals"][p][s] == int(ev.dur[mine].sum())

    line = views.timeline(ev, names)
    assert line is not None and line["about"] == "Step:Model"
    w0, w1 = line["window_ns"]
    span_ms = (w1 - w0) / 1e6
    for x0, d in zip(line["bars"]["x0"], line["bars"]["dur"]):
        assert -1e-6 <= x0 and x0 + d <= span_ms + 1e-6
    assert line["shown"] <= line["in_window"]
