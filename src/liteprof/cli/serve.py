"""``liteprof serve PATH``: Prometheus metrics from logs while they are written.

A sidecar: it reads the log files under PATH (``log/tail.py``, new processes included)
and serves, at ``http://HOST:PORT/metrics``, the Prometheus text format (version 0.0.4):

- ``liteprof_scope_duration_seconds``: a histogram per scope and process, with
  exponential buckets from 1 µs to 100 s, four per decade (Prometheus clients' default
  buckets start at 5 ms, which says nothing about scopes of microseconds);
- ``liteprof_scope_errors_total``: scopes left by an exception;

labelled ``scope``, ``group``, ``process``, ``pid``, ``rank`` (empty where unknown) and
``host``. The profiled program pays nothing more than recording: nothing in it knows
the server exists. A process that ended keeps its final counts (counters never go back).
A bounded log's (``LITEPROF_MAX_MB``) events that were folded into its summary before
they were read come from the summary (``Batch.folds``): counts, sums, errors and buckets
stay exact however late the server started or however slowly it polls.

Each scrape reads what is new first, so it is current; a background poll every
``--interval`` seconds keeps the work of a scrape small. The text of a series is
rendered again only when it changed.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..log import format as F
from .common import UsageError, require_numpy

TYPE_CHECKING = False  # typing and threading cost imports that every command would pay
if TYPE_CHECKING:
    from typing import Any

HELP = "serve Prometheus metrics of logs being written"
DESCRIPTION = (
    "Serve Prometheus metrics at http://HOST:PORT/metrics from every log under PATH, new "
    "processes included, as they are written."
)

# Upper bounds of the duration buckets in ns: 1 µs * 10**(k/4), k = 0..32 (1 µs to 100
# s), the same as a bounded log's summaries keep, so both are added bucket by bucket.
BOUNDS_NS: tuple[int, ...] = F.HISTOGRAM_BOUNDS_NS
DURATION = "liteprof_scope_duration_seconds"
ERRORS = "liteprof_scope_errors_total"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="a log directory (or one log file)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9464, help="port (default 9464)")
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds between background reads of the logs (default 1)",
    )


def label_value(text: str) -> str:
    """A label value in the text format: UTF-8 (a lone surrogate, which a ``str`` scope
    name may hold and no UTF-8 encoder takes, becomes U+FFFD), with backslash, double
    quote and newline escaped."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _le(bound_ns: int) -> str:
    return repr(bound_ns / 1e9)


class Metrics:
    """Cumulative histograms and error counts per (scope, process), fed by a ``Tail``."""

    def __init__(self, path: str) -> None:
        import threading

        import numpy as np

        from ..log.tail import Tail

        self._np = np
        self.tail = Tail(path)
        self.lock = threading.Lock()
        self.bounds = np.array(BOUNDS_NS, dtype=np.int64)
        self.nb = len(BOUNDS_NS) + 1  # the last bucket: above 100 s (+Inf)
        self._les = [_le(b) for b in BOUNDS_NS] + ["+Inf"]
        self._rows: dict[tuple[int, int], int] = {}  # (name, process) -> row
        self._row_of_labels: dict[str, int] = {}  # label text -> row
        self._labels: list[str] = []
        self.counts = np.zeros((0, self.nb), dtype=np.int64)
        self.sums = np.zeros(0, dtype=np.float64)  # seconds
        self.errors = np.zeros(0, dtype=np.int64)
        self._text: list[tuple[str, str]] = []  # per row: histogram lines, counter line
        self._dirty: set[int] = set()
        self.polls = 0

    # -- reading ------------------------------------------------------------------------

    def poll(self) -> int:
        """Read what is new in the logs; the number of events it added."""
        np = self._np
        added = 0
        with self.lock:
            while True:
                batch = self.tail.poll()
                self.polls += 1
                if len(batch):
                    added += len(batch)
                    key = batch.name.astype(np.int64) << 32 | batch.proc.astype(np.int64)
                    uniq, inv = np.unique(key, return_inverse=True)
                    rows = np.array([self._row(int(k)) for k in uniq.tolist()], np.int64)
                    bucket = np.searchsorted(self.bounds, batch.dur, side="left")
                    local = np.bincount(
                        inv * self.nb + bucket, minlength=uniq.size * self.nb
                    ).reshape(uniq.size, self.nb)
                    # Rows are distinct per unique key, but two keys may share a row
                    # (names that differ only in what the format cannot carry).
                    np.add.at(self.counts, rows, local)
                    np.add.at(self.sums, rows, np.bincount(inv, weights=batch.dur) / 1e9)
                    np.add.at(
                        self.errors, rows, np.bincount(inv, weights=batch.error).astype(np.int64)
                    )
                    self._dirty.update(rows.tolist())
                folds = batch.folds
                if len(folds):
                    key = folds.name.astype(np.int64) << 32 | folds.proc.astype(np.int64)
                    rows = np.array([self._row(int(k)) for k in key.tolist()], np.int64)
                    np.add.at(self.counts, rows, folds.buckets)
                    np.add.at(self.sums, rows, folds.total_ns / 1e9)
                    np.add.at(self.errors, rows, folds.errors)
                    self._dirty.update(rows.tolist())
                if not batch.more:
                    return added

    def _row(self, key: int) -> int:
        pair = (key >> 32, key & 0xFFFFFFFF)
        row = self._rows.get(pair)
        if row is not None:
            return row
        name = self.tail.names[pair[0]]
        proc = self.tail.processes[pair[1]]
        group = name.split(":", 1)[0] if ":" in name else ""
        labels = ",".join(
            f'{k}="{label_value(v)}"'
            for k, v in (
                ("scope", name),
                ("group", group),
                ("process", proc.name),
                ("pid", "" if proc.pid is None else str(proc.pid)),
                ("rank", "" if proc.rank is None else str(proc.rank)),
                ("host", proc.host),
            )
        )
        row = self._row_of_labels.get(labels)
        if row is None:
            np = self._np
            row = self._row_of_labels[labels] = len(self._labels)
            self._labels.append(labels)
            self._text.append(("", ""))
            if row >= self.counts.shape[0]:  # amortised doubling
                cap = max(16, 2 * self.counts.shape[0])
                self.counts = np.vstack(
                    [self.counts, np.zeros((cap - self.counts.shape[0], self.nb), np.int64)]
                )
                self.sums = np.concatenate([self.sums, np.zeros(cap - self.sums.size)])
                self.errors = np.concatenate(
                    [self.errors, np.zeros(cap - self.errors.size, np.int64)]
                )
        self._rows[pair] = row
        return row

    # -- the exposition -----------------------------------------------------------------

    def render(self) -> bytes:
        """The text format of every series (each series' text is cached until it
        changes)."""
        with self.lock:
            np = self._np
            for row in self._dirty:
                labels = self._labels[row]
                cum = np.cumsum(self.counts[row]).tolist()
                lines = [
                    f'{DURATION}_bucket{{{labels},le="{le}"}} {c}\n'
                    for le, c in zip(self._les, cum)
                ]
                lines.append(f"{DURATION}_sum{{{labels}}} {float(self.sums[row])!r}\n")
                lines.append(f"{DURATION}_count{{{labels}}} {cum[-1]}\n")
                self._text[row] = ("".join(lines), f"{ERRORS}{{{labels}}} {self.errors[row]}\n")
            self._dirty.clear()
            parts = [
                f"# HELP {DURATION} Duration of liteprof scopes, per scope and process.\n",
                f"# TYPE {DURATION} histogram\n",
            ]
            parts.extend(h for h, _ in self._text)
            parts.append(f"# HELP {ERRORS} Scopes left by an exception, per scope and process.\n")
            parts.append(f"# TYPE {ERRORS} counter\n")
            parts.extend(e for _, e in self._text)
            return "".join(parts).encode("utf-8")


def _handler(metrics: Metrics) -> Any:
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        server_version = "liteprof"

        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            if self.path.split("?", 1)[0] == "/metrics":
                try:
                    metrics.poll()
                    body = metrics.render()
                except Exception as exc:  # a damaged log must not take the server down
                    self.send_error(500, f"cannot read the logs: {exc}")
                    return
                self._send(200, CONTENT_TYPE, body)
            elif self.path == "/":
                self._send(200, "text/html", b'<a href="/metrics">/metrics</a>\n')
            else:
                self.send_error(404)

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            try:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                # The client hung up first (a scraper's timeout ran out while a busy
                # machine read the logs): nothing to answer, and no traceback to print.
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # one line per scrape would flood a terminal

    return Handler


def _poll_forever(metrics: Metrics, interval: float, stop: Any) -> None:
    while not stop.wait(interval):
        try:
            metrics.poll()
        except Exception as exc:  # keep serving what was read
            sys.stderr.write(f"liteprof: serve: cannot read the logs: {exc}\n")
            stop.wait(max(interval, 5.0))


def main(args: argparse.Namespace) -> int:
    require_numpy()
    import signal
    import threading
    from http.server import ThreadingHTTPServer

    if not 0 <= args.port <= 65535:
        raise UsageError(f"not a port: {args.port}")
    if not args.interval > 0:
        raise UsageError(f"--interval must be positive: {args.interval}")
    if not os.path.exists(args.path):
        raise UsageError(f"no such file or directory: {args.path}")
    metrics = Metrics(args.path)
    metrics.poll()  # a bad PATH is an error now, not at the first scrape
    try:
        server = ThreadingHTTPServer((args.host, args.port), _handler(metrics))
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    server.daemon_threads = True
    stop = threading.Event()
    poller = threading.Thread(
        target=_poll_forever, args=(metrics, args.interval, stop), daemon=True
    )
    poller.start()

    def _stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    port = int(server.server_address[1])
    where = f"http://{args.host}:{port}/metrics"
    sys.stderr.write(f"liteprof: serving metrics of {args.path} at {where}\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
        metrics.tail.close()
    return 0


__all__ = ["BOUNDS_NS", "Metrics", "label_value", "main"]
