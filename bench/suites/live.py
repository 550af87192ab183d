"""Live reading: what the tail reader (``liteprof.log.tail``, behind ``liteprof top`` and
``liteprof serve``) costs per new event, and how long a ``liteprof serve`` scrape takes
with 100 recording processes.

- tail: this process records (C core where built) in rounds of ``K`` events; after each
  round one ``Tail.poll()`` is timed. Its cost per new event is set against the
  whole-file reader's (``read_logs`` of the same log, in the same run), and an idle poll
  (nothing new) is timed too: its cost is per live file, not per event read before.
  The same with ``LITEPROF_MAX_MB=8`` (``tail_bounded``): the log recycles its blocks
  after about 13 rounds, and the tail keeps per block the sums a summary replaces; the
  whole-file reader it is set against reads the events the log kept.
- serve: 100 processes each record 10 scopes and stay alive; ``liteprof serve`` follows
  their directory, and ``GET /metrics`` is timed end to end (a poll of 100 live files
  and the text of 1,000 histograms).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from ..context import Context
from ..results import Target

NAME = "live"
TITLE = "Live reading: the tail reader per new event, and `liteprof serve` scrapes"

# A poll's cost per new event in the last quarter of the rounds / in the first quarter:
# proportional to what is new, not to what was read before (a log 4x longer by then).
GROWTH_LIMIT = 1.5

_WRITER = """
import sys, liteprof
for i in range(10):
    for _ in range(50):
        with liteprof.scope(f"Serve:scope{i}"):
            pass
liteprof.flush()
print("ready", flush=True)
sys.stdin.readline()
"""


def _tail(ctx: Context, max_mb: str | None = None) -> dict[str, Any]:
    from liteprof.log.reader import read_logs
    from liteprof.log.tail import Tail

    lp = ctx.liteprof
    rounds = 20 if ctx.quick else 50
    k = 20_000
    if max_mb is not None:
        os.environ["LITEPROF_MAX_MB"] = max_mb
    try:
        d = ctx.enable()
    finally:
        os.environ.pop("LITEPROF_MAX_MB", None)
    try:
        tail = Tail(d)
        tail.poll()
        names = [f"Tail:{i}" for i in range(16)]
        poll_s, events, slots = 0.0, 0, 0
        idle: list[float] = []
        polls: list[float] = []
        for _round in range(rounds):
            for i in range(k):
                with lp.scope(names[i & 15]):
                    pass
            t0 = time.perf_counter()
            batch = tail.poll()
            polls.append(time.perf_counter() - t0)
            poll_s += polls[-1]
            events += len(batch)
            slots += batch.slots_read
            t0 = time.perf_counter()
            tail.poll()
            idle.append(time.perf_counter() - t0)
        lp.flush()
        t0 = time.perf_counter()
        whole = read_logs([d])
        read_s = time.perf_counter() - t0
        folded = getattr(tail, "folded", 0)  # 0 before the tail took summaries
        dropped = sum(p.get("dropped", 0) for p in whole.processes)
        assert whole.records + dropped == events + folded == rounds * k, (whole.records, events)
        tail.close()
    finally:
        ctx.disable(d)
    return {
        "rounds": rounds,
        "per_round": k,
        "events": events,
        "folded": folded,
        "slots_read": slots,
        "tail_ns_per_event": poll_s * 1e9 / (rounds * k),  # every event written
        "reader_ns_per_event": read_s * 1e9 / whole.records,
        # medians of a quarter of the rounds each: a preempted poll does not decide it
        "first_quarter_ns_per_event": statistics.median(polls[: rounds // 4]) * 1e9 / k,
        "last_quarter_ns_per_event": statistics.median(polls[-(rounds // 4) :]) * 1e9 / k,
        "idle_poll_us": min(idle) * 1e6,
        "idle_poll_median_us": statistics.median(idle) * 1e6,
        "backend": lp.BACKEND,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(ctx: Context) -> dict[str, Any]:
    nproc = 100
    root = tempfile.mkdtemp(prefix="live-serve-", dir=ctx.tmpdir)
    logdir = os.path.join(root, "prof")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITEPROF_", "VLLM_"))}
    procs: list[subprocess.Popen[str]] = []
    server = None
    try:
        for _ in range(nproc):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", _WRITER],
                    env=dict(env, LITEPROF_LOG=logdir),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "liteprof", "serve", logdir, "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 60
        body = b""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310
                    body = resp.read()
                if body.count(b"_count{") == 10 * nproc:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert body.count(b"_count{") == 10 * nproc, "serve never showed every series"
        samples = []
        for _ in range(10 if ctx.quick else 30):
            t0 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310
                body = resp.read()
            samples.append(time.perf_counter() - t0)
        return {
            "processes": nproc,
            "series": body.count(b"_count{"),
            "bytes": len(body),
            "scrape_ms": min(samples) * 1e3,
            "scrape_median_ms": statistics.median(samples) * 1e3,
        }
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        for p in procs:
            try:
                p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
        shutil.rmtree(root, ignore_errors=True)


def run(ctx: Context) -> dict[str, Any]:
    return {"tail": _tail(ctx), "tail_bounded": _tail(ctx, "8"), "serve": _serve(ctx)}


def targets(results: dict[str, Any]) -> list[Target]:
    t = results["tail"]
    return [
        Target(
            "live_tail_growth",
            "live: tail poll per new event, last quarter of the rounds / first quarter "
            "(cost by what is new, not by the log's length)",
            t["last_quarter_ns_per_event"] / t["first_quarter_ns_per_event"],
            "<=",
            GROWTH_LIMIT,
            detail=f"{t['first_quarter_ns_per_event']:.0f} -> "
            f"{t['last_quarter_ns_per_event']:.0f} ns per new event",
        ),
    ]


def summary(results: dict[str, Any]) -> list[str]:
    t, s, b = results["tail"], results["serve"], results["tail_bounded"]
    return [
        f"live: tail {t['tail_ns_per_event']:.1f} ns per new event (reader "
        f"{t['reader_ns_per_event']:.1f} ns), idle poll {t['idle_poll_us']:.1f} µs; "
        f"bounded (8 MiB) {b['tail_ns_per_event']:.1f} ns (reader "
        f"{b['reader_ns_per_event']:.1f} ns, {b['folded']:,} events from summaries); "
        f"serve scrape with {s['processes']} processes ({s['series']} series, "
        f"{s['bytes'] / 1e6:.1f} MB): min {s['scrape_ms']:.1f} ms, median "
        f"{s['scrape_median_ms']:.1f} ms"
    ]


def markdown(results: dict[str, Any]) -> list[str]:
    t, s, b = results["tail"], results["serve"], results["tail_bounded"]
    return [
        f"## {TITLE}",
        "",
        f"Tail reader ({t['backend']} recorder): {t['rounds']} rounds of "
        f"{t['per_round']:,} events, one poll timed after each.",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| tail poll, per new event | {t['tail_ns_per_event']:.1f} ns |",
        f"| whole-file reader (`read_logs`), per event | {t['reader_ns_per_event']:.1f} ns |",
        f"| ratio | {t['tail_ns_per_event'] / t['reader_ns_per_event']:.2f}x |",
        f"| idle poll (nothing new), min / median | {t['idle_poll_us']:.1f} / "
        f"{t['idle_poll_median_us']:.1f} µs |",
        f"| slots read / events | {t['slots_read'] / max(t['events'], 1):.3f} |",
        f"| poll per new event, first / last quarter of the rounds (median) | "
        f"{t['first_quarter_ns_per_event']:.1f} / {t['last_quarter_ns_per_event']:.1f} ns |",
        "",
        f"The same with `LITEPROF_MAX_MB=8`: tail {b['tail_ns_per_event']:.1f} ns per new "
        f"event, whole-file reader {b['reader_ns_per_event']:.1f} ns per event kept "
        f"({b['tail_ns_per_event'] / b['reader_ns_per_event']:.2f}x); "
        f"{b['folded']:,} events were taken from the summary, idle poll "
        f"{b['idle_poll_us']:.1f} µs.",
        "",
        f"`liteprof serve` with {s['processes']} live processes, {s['series']} series "
        f"({s['bytes'] / 1e6:.2f} MB of text): `GET /metrics` end to end, min "
        f"{s['scrape_ms']:.1f} ms, median {s['scrape_median_ms']:.1f} ms.",
        "",
    ]
