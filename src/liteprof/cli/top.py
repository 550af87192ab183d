"""``liteprof top PATH``: a live terminal view of logs while they are written.

Every ``--interval`` seconds (default 1) it reads what the logs under PATH gained
(``log/tail.py``, new processes included) and redraws one table: per scope (and per
process, or summed over processes), over the last ``--window`` seconds, the events per
second, the share of wall time, mean, p50 and p99, errors, and the count of events in
the logs (those written before ``top`` started included). Keys: ``s`` the next sort key,
``p`` per process / summed, ``q`` quits (so does Ctrl-C). It draws with rich on the
terminal's alternate screen and reads keys from the terminal in cbreak mode, which is all
a plain terminal over SSH needs.

The window holds one small aggregate per poll and (scope, process): count, total, errors
and a histogram of the durations in buckets 2% wide, so the percentiles are within 1% and
memory does not grow with the event rate.

Bounded logs (``LITEPROF_MAX_MB``): the ``total`` column counts every event, also those
the log folded into its summary before ``top`` read them (``Batch.folds``), so it is the
report's count. The window's rates, means, percentiles and errors are of the events read
only: a folded event has no time of its own to place it in a window (only its duration's
bucket is kept), so a poll slower than the log's recycling shows lower rates, never
wrong totals.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import deque

from .common import UsageError, require_numpy

TYPE_CHECKING = False  # typing costs an import that every liteprof command would pay
if TYPE_CHECKING:
    from typing import Any

HELP = "live view of logs being written"
DESCRIPTION = (
    "A live view of the logs under PATH while they are written: per scope, events/s, mean, "
    "p50 and p99 over the last seconds, per process or summed. Keys: s sort, p per "
    "process/summed, q quit."
)

SORT_KEYS = ("time", "rate", "mean", "p99", "errors", "name")
"""``time``: wall time spent in the scope per second (rate x mean)."""
_SORT_LABELS = {
    "time": "time/s",
    "rate": "events/s",
    "mean": "mean",
    "p99": "p99",
    "errors": "errors",
    "name": "name",
}
_RATIO = 1.02  # histogram buckets: [1.02**k, 1.02**(k+1)) ns; a midpoint is within 1%
_LOG_RATIO = math.log(_RATIO)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="a log directory (or one log file)")
    parser.add_argument(
        "--window", type=float, default=10.0, metavar="S", help="seconds of the window (10)"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="seconds between redraws (1)"
    )
    parser.add_argument("--sort", choices=SORT_KEYS, default="time", help="sort key (time)")
    parser.add_argument(
        "--summed", action="store_true", help="one row per scope, summed over processes"
    )


class Window:
    """Per-poll aggregates of the events of the last ``seconds``, per (scope, process)."""

    def __init__(self, seconds: float) -> None:
        import numpy as np

        self._np = np
        self.seconds = seconds
        # (time, {(name, proc): (count, total_ns, errors, buckets, bucket_counts)})
        self.polls: deque[tuple[float, dict[tuple[int, int], tuple[Any, ...]]]] = deque()
        self.totals: dict[tuple[int, int], int] = {}  # every event read or folded

    def add(self, now: float, name: Any, dur: Any, error: Any, proc: Any) -> None:
        """One poll's events (the columns of a ``tail.Batch``), at time ``now``."""
        np = self._np
        agg: dict[tuple[int, int], tuple[Any, ...]] = {}
        if dur.shape[0]:
            key = name.astype(np.int64) << 32 | proc.astype(np.int64)
            order = np.argsort(key, kind="stable")
            key, dur, error = key[order], dur[order], error[order]
            bucket = np.zeros(dur.shape[0], np.int64)
            pos = dur > 0
            bucket[pos] = (np.log(dur[pos].astype(np.float64)) / _LOG_RATIO).astype(np.int64) + 1
            starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
            ends = np.r_[starts[1:], key.shape[0]]
            for lo, hi in zip(starts.tolist(), ends.tolist()):
                k = int(key[lo])
                pair = (k >> 32, k & 0xFFFFFFFF)
                b, c = np.unique(bucket[lo:hi], return_counts=True)
                agg[pair] = (
                    hi - lo,
                    int(dur[lo:hi].sum(dtype=np.float64)),
                    int(np.count_nonzero(error[lo:hi])),
                    b,
                    c,
                )
                self.totals[pair] = self.totals.get(pair, 0) + hi - lo
        self.polls.append((now, agg))
        while self.polls and self.polls[0][0] < now - self.seconds:
            self.polls.popleft()

    def add_folds(self, folds: Any) -> None:
        """What a poll took from bounded logs' summaries (a ``tail.Folds``): counted in
        the totals, not in the window (those events have no time of their own)."""
        for name, proc, count in zip(
            folds.name.tolist(), folds.proc.tolist(), folds.count.tolist()
        ):
            pair = (name, proc)
            self.totals[pair] = self.totals.get(pair, 0) + count

    def rows(self, summed: bool) -> list[dict[str, Any]]:
        """One row per scope and process (or per scope, ``summed``): ``name``, ``proc``
        (``None`` when summed), ``rate`` (events/s), ``time`` (ns of scope per second),
        ``mean``, ``p50``, ``p99`` (ns), ``errors`` (in the window), ``total`` (every
        event of the logs: read, or taken from a bounded log's summary).

        A poll's events closed between the previous poll and it, so the oldest poll kept
        only marks where the window starts: rates are of the polls after it over the time
        they cover (the first poll of all, the backlog, never makes a rate). With a
        single poll there is no rate (``None``), only its distribution.
        """
        np = self._np
        polls = list(self.polls)
        span: float | None = None
        if len(polls) > 1:
            span = max(polls[-1][0] - polls[0][0], 1e-9)
            polls = polls[1:]
        merged: dict[tuple[int, int], list[Any]] = {}
        for _t, agg in polls:
            for (name, proc), (count, total, errors, b, c) in agg.items():
                key = (name, -1 if summed else proc)
                m = merged.setdefault(key, [0, 0, 0, [], []])
                m[0] += count
                m[1] += total
                m[2] += errors
                m[3].append(b)
                m[4].append(c)
        totals: dict[tuple[int, int], int] = {}
        for (name, proc), n in self.totals.items():
            key = (name, -1 if summed else proc)
            totals[key] = totals.get(key, 0) + n
        out = []
        for key, total_events in totals.items():
            got = merged.get(key)
            row: dict[str, Any] = {
                "name": key[0],
                "proc": None if summed else key[1],
                "total": total_events,
                "rate": 0.0 if span else None,
                "mean": None,
                "p50": None,
                "p99": None,
                "errors": 0,
                "time": 0.0 if span else None,
            }
            if got and got[0]:
                m = got
                b = np.concatenate(m[3])
                c = np.concatenate(m[4])
                uniq, inv = np.unique(b, return_inverse=True)
                counts = np.bincount(inv, weights=c).astype(np.int64)
                cum = np.cumsum(counts)
                row.update(
                    rate=m[0] / span if span else None,
                    mean=m[1] / m[0],
                    p50=_bucket_value(int(uniq[np.searchsorted(cum, 0.5 * m[0])])),
                    p99=_bucket_value(int(uniq[np.searchsorted(cum, 0.99 * m[0])])),
                    errors=m[2],
                    time=m[1] / span if span else None,
                )
            out.append(row)
        return out


def _bucket_value(bucket: int) -> float:
    """The middle (geometric) of a histogram bucket, in ns."""
    if bucket <= 0:
        return 0.0
    return float(_RATIO ** (bucket - 0.5))


def sort_rows(rows: list[dict[str, Any]], key: str, names: list[str]) -> list[dict[str, Any]]:
    if key == "name":
        return sorted(rows, key=lambda r: (names[r["name"]], r["proc"] or 0))
    return sorted(rows, key=lambda r: (-(r[key] or 0), names[r["name"]]))


def _table(
    rows: list[dict[str, Any]],
    tail: Any,
    args: argparse.Namespace,
    sort: str,
    summed: bool,
    height: int,
) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from ..renderers.base import fmt_duration, one_line, shorten

    live = sum(1 for p in tail.processes if p.state == "live")
    title = (
        f"liteprof top {one_line(args.path)}: {len(tail.processes)} processes ({live} live), "
        f"{tail.records} events read"
        + (f" (+{tail.folded} from summaries)" if tail.folded else "")
        + f", {tail.skipped} skipped; window {args.window:g} s; "
        f"sort: {_SORT_LABELS[sort]}; {'summed' if summed else 'per process'}"
    )
    table = Table(
        caption="s sort   p per process/summed   q quit",
        expand=False,
        box=None,
        header_style="bold",
        pad_edge=False,
    )
    table.add_column("Scope", no_wrap=True, overflow="ellipsis", min_width=16, max_width=60)
    if not summed:
        table.add_column("Process", no_wrap=True)
    for col in ("events/s", "time/s", "mean", "p50", "p99", "errors", "total"):
        table.add_column(col, justify="right", no_wrap=True)
    shown = rows[: max(1, height - 6)]
    for r in shown:
        cells = [Text(shorten(one_line(tail.names[r["name"]]), 60))]
        if not summed:
            p = tail.processes[r["proc"]]
            label = one_line(p.name) + ("" if p.pid is None else f" {p.pid}")  # text logs: none
            label += "" if p.state == "live" else f" ({p.state})"
            cells.append(Text(label))
        cells += [
            Text("-" if r["rate"] is None else f"{r['rate']:,.1f}"),
            Text("-" if r["time"] is None else f"{r['time'] / 1e9:.3f}"),
            Text(fmt_duration(r["mean"])),
            Text(fmt_duration(r["p50"])),
            Text(fmt_duration(r["p99"])),
            Text(str(r["errors"]), style="red" if r["errors"] else ""),
            Text(f"{r['total']:,}"),
        ]
        table.add_row(*cells)
    if len(rows) > len(shown):
        table.caption = f"{len(rows) - len(shown)} more rows   " + str(table.caption)
    # The title above the table, not in it: a table's title wraps at the table's width.
    return Group(Text(title, style="bold"), table)


class _Keys:
    """Keys from the terminal, one at a time, without echo or waiting for Enter."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.saved: Any = None
        if sys.stdin is not None and sys.stdin.isatty():
            import termios
            import tty

            self.fd = sys.stdin.fileno()
            self.saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)  # Ctrl-C still interrupts

    def read(self, timeout: float) -> str | None:
        """A key typed within ``timeout`` seconds, else ``None`` (then it has waited)."""
        import select

        if self.fd is None:
            time.sleep(max(0.0, timeout))
            return None
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return None
        data = os.read(self.fd, 32)
        return data[:1].decode("ascii", "replace").lower() if data else None

    def close(self) -> None:
        if self.fd is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.fd = None


def main(args: argparse.Namespace) -> int:
    require_numpy()
    try:
        from rich.console import Console
        from rich.live import Live
    except ImportError:
        raise UsageError(
            "liteprof top draws with rich: pip install rich (or liteprof[report])"
        ) from None
    if not os.path.exists(args.path):
        raise UsageError(f"no such file or directory: {args.path}")
    if not args.window > 0 or not args.interval > 0:
        raise UsageError("--window and --interval must be positive")
    import signal

    from ..log.tail import Tail

    tail = Tail(args.path)
    window = Window(args.window)
    batch = tail.poll()  # a bad PATH is an error before the screen changes
    window.add(time.monotonic(), batch.name, batch.dur, batch.error, batch.proc)
    window.add_folds(batch.folds)

    def _stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    console = Console()
    sort, summed = args.sort, args.summed
    keys = _Keys()
    try:
        with Live(console=console, screen=True, auto_refresh=False) as live:
            next_poll = time.monotonic() + args.interval
            while True:
                rows = sort_rows(window.rows(summed), sort, tail.names)
                live.update(_table(rows, tail, args, sort, summed, console.height), refresh=True)
                key = keys.read(next_poll - time.monotonic())
                if key == "q":
                    break
                if key == "s":
                    sort = SORT_KEYS[(SORT_KEYS.index(sort) + 1) % len(SORT_KEYS)]
                elif key == "p":
                    summed = not summed
                if time.monotonic() >= next_poll:
                    while True:
                        batch = tail.poll()
                        window.add(time.monotonic(), batch.name, batch.dur, batch.error, batch.proc)
                        window.add_folds(batch.folds)
                        if not batch.more:
                            break
                    next_poll = time.monotonic() + args.interval
    except KeyboardInterrupt:
        pass
    finally:
        keys.close()
        tail.close()
    return 0
