"""OpenTelemetry spans over OTLP/HTTP (protobuf), sent to a collector.

One span per event, with its parent span (the enclosing scope in the same thread and
task); each root scope starts a trace of its own. Resource attributes per process:
``service.name`` (the process name), ``process.pid``, ``host.name`` (and
``liteprof.rank`` where the process had one); span attributes ``thread.id`` and
``thread.name``; status ``ERROR`` for a scope left by an exception. Span kind INTERNAL.

Encoded by liteprof's own protobuf writer (a span costs a few microseconds, not the
SDK's), posted to ``URL/v1/traces`` in batches of about 2 MiB, each retried on
connection errors and on 429/502/503/504 with a growing pause; any other refusal
stops the export with one line that says what the endpoint answered.
"""

from __future__ import annotations

import os
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import numpy as np

from .._version import __version__
from ..log.errors import LogError
from ..log.events import Events
from . import _proto as P
from .base import Exporter

BATCH_BYTES = 2 << 20
RETRY_STATUSES = (429, 502, 503, 504)


class OtlpError(LogError):
    """The endpoint could not be reached or refused the spans (one line, exit 2)."""


def _kv(key: str, value: str | int) -> bytes:
    if isinstance(value, int):
        any_value = P.field_varint(3, value)  # int_value
    else:
        any_value = P.field_str(1, value)  # string_value
    return P.field_str(1, key) + P.field_bytes(2, any_value)


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL (``/v1/traces`` added)."""
    parsed = urllib.parse.urlparse(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise OtlpError(f"not an http(s) URL: {endpoint!r}")
    if parsed.path.rstrip("/").endswith("/v1/traces"):
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"


class OtlpExporter(Exporter):
    """Sends spans to an OTLP/HTTP collector (``liteprof export --format otlp``)."""

    timeline = True
    retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    timeout = 10.0

    def __init__(self, endpoint: str) -> None:
        self.url = traces_url(endpoint)
        self.spans = 0
        self.requests = 0

    def write(self, events: Events, out: Any) -> None:  # the file-less format
        self.send(events)

    def send(self, events: Events) -> None:
        for body in self.requests_of(events):
            self._post(body)

    def requests_of(self, events: Events) -> Any:
        """The encoded ``ExportTraceServiceRequest`` bodies, about ``BATCH_BYTES`` each."""
        n = events.records
        if n == 0:
            return
        # Ids: random per export, so two exports of one log never collide in a backend.
        salt = int.from_bytes(os.urandom(8), "little") & ~0xFFFFFFFFFF
        span_ids = (np.arange(n, dtype=np.uint64) + np.uint64(1)) | np.uint64(salt)
        root = _roots(events)
        trace_hi = os.urandom(8)
        start = events.start
        end = start + events.dur
        scope = P.field_bytes(1, P.field_str(1, "liteprof") + P.field_str(2, __version__))
        name_bytes = [P.field_str(5, name) for name in events.names]
        thread_attrs = [
            P.field_bytes(9, _kv("thread.id", int(t.get("tid") or 0)))
            + P.field_bytes(9, _kv("thread.name", str(t.get("name", "?"))))
            for t in events.threads
        ]
        resources = [self._resource(p) for p in events.processes]
        kind = P.field_varint(6, 1)  # SPAN_KIND_INTERNAL
        error_status = P.field_bytes(15, P.field_varint(3, 2))  # STATUS_CODE_ERROR
        pack = struct.Struct("<Q").pack
        # Rows are grouped by file, and a file is one process: one ResourceSpans each.
        proc = events.proc
        cuts = np.flatnonzero(np.r_[True, proc[1:] != proc[:-1]]) if n else np.zeros(0)
        bounds = np.r_[cuts, n].astype(np.int64).tolist()
        sid = span_ids.tolist()
        parent = events.parent.tolist()
        roots = root.tolist()
        starts, ends_ = start.tolist(), end.tolist()
        names = events.name.tolist()
        threads = events.thread.tolist()
        errors = events.error.tolist()
        for a, b in zip(bounds[:-1], bounds[1:]):
            p = int(proc[a])
            resource = resources[p] if p >= 0 else P.field_bytes(1, b"")
            spans: list[bytes] = []
            size = 0
            for i in range(a, b):
                up = parent[i]
                body = (
                    P.field_bytes(1, trace_hi + pack(sid[roots[i]]))
                    + P.field_bytes(2, pack(sid[i]))
                    + (P.field_bytes(4, pack(sid[up])) if up >= 0 else b"")
                    + name_bytes[names[i]]
                    + kind
                    + P.field_fixed64(7, starts[i])
                    + P.field_fixed64(8, ends_[i])
                    + (thread_attrs[threads[i]] if threads[i] >= 0 else b"")
                    + (error_status if errors[i] else b"")
                )
                span = P.field_bytes(2, body)
                spans.append(span)
                size += len(span)
                if size >= BATCH_BYTES:
                    yield self._request(resource, scope, spans)
                    spans, size = [], 0
            if spans:
                yield self._request(resource, scope, spans)

    def _resource(self, proc: dict[str, Any]) -> bytes:
        attrs = _kv("service.name", str(proc.get("name", "?")))
        if isinstance(proc.get("pid"), int):
            attrs = P.field_bytes(1, attrs) + P.field_bytes(1, _kv("process.pid", proc["pid"]))
        else:
            attrs = P.field_bytes(1, attrs)
        attrs += P.field_bytes(1, _kv("host.name", str(proc.get("host", "?"))))
        if proc.get("rank") is not None:
            attrs += P.field_bytes(1, _kv("liteprof.rank", int(proc["rank"])))
        return P.field_bytes(1, attrs)

    def _request(self, resource: bytes, scope: bytes, spans: list[bytes]) -> bytes:
        self.spans += len(spans)
        scope_spans = P.field_bytes(2, scope + b"".join(spans))
        return P.field_bytes(1, resource + scope_spans)

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.url,
            data=body,
            headers={"Content-Type": "application/x-protobuf"},
            method="POST",
        )
        delays = list(self.retry_delays)
        while True:
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    reply.read()
                self.requests += 1
                return
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRY_STATUSES or not delays:
                    raise OtlpError(
                        f"{self.url} refused the spans: HTTP {exc.code} {exc.reason}"
                    ) from None
            except (urllib.error.URLError, OSError) as exc:
                if not delays:
                    reason = getattr(exc, "reason", exc)
                    raise OtlpError(f"cannot send spans to {self.url}: {reason}") from None
            time.sleep(delays.pop(0))

    def summary(self) -> dict[str, Any]:
        return {"spans": self.spans, "requests": self.requests}


def _roots(events: Events) -> np.ndarray:
    """Each event's outermost ancestor (itself for a root): the span that names its
    trace. Pointer jumping: log2(depth) vectorised steps."""
    up = np.where(events.parent >= 0, events.parent, np.arange(events.records))
    while True:
        nxt = up[up]
        if np.array_equal(nxt, up):
            return up
        up = nxt
