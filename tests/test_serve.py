"""``liteprof serve``: Prometheus metrics of logs being written, scraped by a real
Prometheus (Debian's ``prometheus``, which ``.ci/run`` installs where missing) started on
127.0.0.1 with a 1 s scrape, and queried over its HTTP API.

One Prometheus serves the module; each test starts ``liteprof serve`` on the port it
scrapes and tells its series apart by the recording process's pid. Every server is
bounded in time and killed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from liteprof.cli.serve import BOUNDS_NS, label_value

from .helpers import child_env

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1
        return resp.read()  # type: ignore[no-any-return]


def _wait_until(what: str, check: Any, deadline_s: float = 30.0) -> Any:
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        try:
            last = check()
        except (OSError, ValueError, KeyError, IndexError):
            last = None
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Prometheus:
    def __init__(self, root: str, target_port: int) -> None:
        self.port = _free_port()
        self.target_port = target_port
        config = os.path.join(root, "prometheus.yml")
        with open(config, "w") as fh:
            fh.write(
                textwrap.dedent(
                    f"""
                    global:
                      scrape_interval: 1s
                      scrape_timeout: 1s
                    scrape_configs:
                      - job_name: liteprof
                        static_configs:
                          - targets: ["127.0.0.1:{target_port}"]
                    """
                )
            )
        self.log = open(os.path.join(root, "prometheus.log"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={os.path.join(root, 'data')}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
        )
        _wait_until("Prometheus to be ready", lambda: _get(self.url("/-/ready")))

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = json.loads(
            _get(self.url("/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
        )
        assert body["status"] == "success", body
        return body["data"]["result"]  # type: ignore[no-any-return]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def close(self) -> None:
        _stop(self.proc)
        self.log.close()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    root = os.fspath(tmp_path_factory.mktemp("prometheus"))
    prom = Prometheus(root, _free_port())
    try:
        yield prom
    finally:
        prom.close()


def _serve(logdir: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "liteprof", "serve", logdir, "--port", str(port)]
        + ["--interval", "0.2"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    _wait_until("liteprof serve to answer", lambda: proc.poll() is None and _get(url) is not None)
    return proc


# The known workload: with a fixed clock, N events per phase of "Known:work" whose
# durations are spread evenly over one histogram bucket (L, U], so that the true median
# and Prometheus' interpolated one are both the bucket's middle; 3 events of "Known:fail"
# leave by an exception. Between phases the program waits for the test.
N = 400
LOW, HIGH = BOUNDS_NS[9], BOUNDS_NS[10]  # (177.8 µs, 316.2 µs]
WORKLOAD = textwrap.dedent(
    f"""
    import os, sys, time
    import liteprof
    from liteprof import testing
    sync = sys.argv[1]
    def wait(name):
        while not os.path.exists(os.path.join(sync, name)):
            time.sleep(0.02)
    def say(name):
        open(os.path.join(sync, name), "w").close()
    durations = [{LOW} + ({HIGH} - {LOW}) * (j + 0.5) / {N} for j in range({N})]
    times = []
    t = 10**9
    for d in durations * 2 + [5000] * 6:
        times += [t, t + round(d)]
        t += round(d) + 1000
    clock = iter(times).__next__
    with testing.fixed_clock(clock):
        for _ in range({N}):
            with liteprof.scope("Known:work"):
                pass
        liteprof.flush(); say("phase1"); wait("go")
        for _ in range({N}):
            with liteprof.scope("Known:work"):
                pass
        for _ in range(3):
            try:
                with liteprof.scope("Known:fail"):
                    raise ValueError
            except ValueError:
                pass
        liteprof.flush(); say("phase2"); wait("end")
    """
)


@pytest.mark.usefixtures("backend")
def test_prometheus_scrapes_counts_that_grow_and_the_right_p50(
    prometheus: Prometheus, tmp_path: os.PathLike[str]
) -> None:
    root = os.fspath(tmp_path)
    logdir, sync = os.path.join(root, "prof"), os.path.join(root, "sync")
    os.makedirs(logdir)
    os.makedirs(sync)
    script = os.path.join(root, "workload.py")
    with open(script, "w") as fh:
        fh.write(WORKLOAD)
    serve = _serve(logdir, prometheus.target_port)
    program = subprocess.Popen([sys.executable, script, sync], env=child_env(LITEPROF_LOG=logdir))
    try:
        sel = f'scope="Known:work",pid="{program.pid}"'
        count = f"sum(liteprof_scope_duration_seconds_count{{{sel}}})"
        _wait_until("phase 1", lambda: os.path.exists(os.path.join(sync, "phase1")))
        assert _wait_until("N events in Prometheus", lambda: prometheus.value(count) == N)
        open(os.path.join(sync, "go"), "w").close()
        _wait_until("phase 2", lambda: os.path.exists(os.path.join(sync, "phase2")))
        # The counts grow while the program runs.
        assert _wait_until("2N events", lambda: prometheus.value(count) == 2 * N)
        p50 = prometheus.value(
            "histogram_quantile(0.5, sum by (le) "
            f"(liteprof_scope_duration_seconds_bucket{{{sel}}}))"
        )
        true_p50 = (LOW + HIGH) / 2 / 1e9
        assert p50 is not None and abs(p50 - true_p50) / true_p50 < 0.01, (p50, true_p50)
        # The README's query: p99 per scope, from the rate of the buckets.
        readme_p99 = (
            "histogram_quantile(0.99, sum by (scope, le) "
            "(rate(liteprof_scope_duration_seconds_bucket[5m])))"
        )
        rows = _wait_until(
            "the README's p99 query",
            lambda: [
                r for r in prometheus.query(readme_p99) if r["metric"]["scope"] == "Known:work"
            ],
        )
        assert LOW / 1e9 < float(rows[0]["value"][1]) <= HIGH / 1e9, rows
        total = prometheus.value(f"sum(liteprof_scope_duration_seconds_sum{{{sel}}})")
        assert total is not None and abs(total - 2 * N * true_p50) / (2 * N * true_p50) < 1e-6
        errors = f'liteprof_scope_errors_total{{scope="Known:fail",pid="{program.pid}"}}'
        assert _wait_until("the errors", lambda: prometheus.value(errors) == 3)
        labels = prometheus.query(errors)[0]["metric"]
        assert labels["group"] == "Known" and labels["process"] == "MainProcess"
        assert labels["host"] == socket.gethostname() and "rank" not in labels  # empty
        open(os.path.join(sync, "end"), "w").close()
        program.wait(timeout=60)
        assert program.returncode == 0
        # The process ended: its series keep their final counts, scrape after scrape.
        time.sleep(2.5)
        assert prometheus.value(count) == 2 * N
        assert prometheus.value(errors) == 3
        up = prometheus.value('up{job="liteprof"}')
        assert up == 1.0
    finally:
        open(os.path.join(sync, "end"), "w").close()
        if program.poll() is None:
            program.kill()
        program.wait(timeout=60)
        _stop(serve)
        assert serve.stderr is not None
        err = serve.stderr.read().decode()
        serve.stderr.close()
    assert "Traceback" not in err, err


def test_label_values_are_escaped_and_valid_utf8() -> None:
    assert label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert label_value("lone \ud800 surrogate") == "lone \ufffd surrogate"
    assert label_value("Model:Forward") == "Model:Forward"


def test_buckets_run_from_one_microsecond_to_100_seconds() -> None:
    assert BOUNDS_NS[0] == 1000 and BOUNDS_NS[-1] == 100 * 10**9
    assert all(b < c for b, c in zip(BOUNDS_NS, BOUNDS_NS[1:]))


def test_serve_of_a_missing_path_is_one_line_and_exit_2(tmp_path: os.PathLike[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "liteprof", "serve", os.path.join(os.fspath(tmp_path), "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def _metrics(body: str, pid: int) -> dict[str, dict[str, Any]]:
    """Per scope of process ``pid``: its ``count``, ``sum``, cumulative ``buckets`` (by
    ``le``) and ``errors``, from the text format."""
    out: dict[str, dict[str, Any]] = {}
    for line in body.splitlines():
        if line.startswith("#") or f'pid="{pid}"' not in line:
            continue
        series, value = line.rsplit(" ", 1)
        metric, labels = series.split("{", 1)
        scope = labels.split('scope="', 1)[1].split('"', 1)[0]
        row = out.setdefault(scope, {"buckets": {}})
        if metric.endswith("_bucket"):
            le = labels.split('le="', 1)[1].split('"', 1)[0]
            row["buckets"][le] = int(value)
        elif metric.endswith("_count"):
            row["count"] = int(value)
        elif metric.endswith("_sum"):
            row["sum"] = float(value)
        else:
            row["errors"] = int(value)
    return out


@pytest.mark.usefixtures("backend")
def test_serve_of_a_bounded_log_started_late_is_exact(
    prometheus: Prometheus, tmp_path: os.PathLike[str]
) -> None:
    """``liteprof serve`` started after a bounded log (8 MiB, 3M scopes) had folded most
    of its events: its counts, errors, sums and buckets are the report's, in its text and
    in Prometheus, and they never go back between scrapes."""
    from .test_tail_bounded import expected, start_phases, wait_for

    root = os.fspath(tmp_path)
    program, logdir, sync = start_phases(root)
    serve = None
    try:
        wait_for(os.path.join(sync, "phase1"), program)
        serve = _serve(logdir, prometheus.target_port)
        url = f"http://127.0.0.1:{prometheus.target_port}/metrics"
        open(os.path.join(sync, "go"), "w").close()
        seen: list[int] = []
        while program.poll() is None:
            now = _metrics(_get(url).decode(), program.pid)
            seen.append(sum(r.get("count", 0) for r in now.values()))
            time.sleep(0.1)
        assert program.wait(timeout=60) == 0
        assert seen == sorted(seen), seen  # counters never go back
        rows, buckets = expected(logdir)
        got = _metrics(_get(url).decode(), program.pid)
        assert sorted(got) == sorted(rows)
        for scope, row in rows.items():
            m = got[scope]
            assert (m["count"], m["errors"]) == (row["count"], row["errors"]), scope
            assert m["sum"] == pytest.approx(row["total_ns"] / 1e9, rel=1e-9), scope
            cumulative = np.cumsum(buckets[scope]).tolist()
            assert list(m["buckets"].values()) == cumulative, scope
        # What Prometheus scraped: the same.
        sel = f'pid="{program.pid}"'
        total = sum(r["count"] for r in rows.values())
        count = f"sum(liteprof_scope_duration_seconds_count{{{sel}}})"
        _wait_until("every event in Prometheus", lambda: prometheus.value(count) == total)
        errors = prometheus.value(f"sum(liteprof_scope_errors_total{{{sel}}})")
        assert errors == sum(r["errors"] for r in rows.values())
    finally:
        if program.poll() is None:
            program.kill()
        program.communicate(timeout=60)
        if serve is not None:
            _stop(serve)
            assert serve.stderr is not None
            err = serve.stderr.read().decode()
            serve.stderr.close()
            assert "Traceback" not in err, err


def test_a_client_that_hangs_up_before_the_answer_prints_no_traceback(
    tmp_path: os.PathLike[str],
) -> None:
    """A scraper whose timeout runs out closes its connection (here with a reset) before
    the server answers: the server goes on serving, and says nothing on stderr."""
    import struct

    logdir = os.fspath(tmp_path)
    port = _free_port()
    serve = _serve(logdir, port)
    try:
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _get(f"http://127.0.0.1:{port}/metrics").startswith(b"# HELP")
    finally:
        _stop(serve)
        assert serve.stderr is not None
        err = serve.stderr.read().decode()
        serve.stderr.close()
    assert "Traceback" not in err and "Exception" not in err, err
