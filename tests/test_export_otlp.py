"""``liteprof export --format otlp``: spans to a receiver on 127.0.0.1.

The receiver decodes every request with ``opentelemetry-proto``'s
``ExportTraceServiceRequest``; each event must arrive as one span, with the right parent,
the resource and span attributes of the SPEC, and ERROR status where it raised.
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from liteprof.log.reader import read_logs

from .helpers import cli
from .test_export import _record_program


class _Receiver(http.server.ThreadingHTTPServer):
    def __init__(self, answers: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers = answers  # HTTP statuses to give, in turn (then 200)
        self.requests: list[Any] = []
        self.paths: list[str] = []
        self.types: list[str] = []


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.server.answers.pop(0) if self.server.answers else 200
        if status == 200:
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            self.server.requests.append(request)
            self.server.paths.append(self.path)
            self.server.types.append(self.headers["Content-Type"])
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[_Receiver]:
    answers = list(getattr(request, "param", []))
    server = _Receiver(answers)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _endpoint(server: _Receiver) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _attrs(kvs: Any) -> dict[str, Any]:
    out = {}
    for kv in kvs:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


@pytest.mark.usefixtures("backend")
def test_every_event_is_a_span_with_its_parent(receiver: _Receiver, logdir: str) -> None:
    _record_program(logdir)
    proc = cli("export", logdir, "--format", "otlp", "--endpoint", _endpoint(receiver))
    assert proc.returncode == 0, proc.stderr
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    assert set(receiver.types) == {"application/x-protobuf"}
    events = read_logs([logdir])
    spans = []
    for request in receiver.requests:
        for rs in request.resource_spans:
            res = _attrs(rs.resource.attributes)
            assert res["service.name"] == events.processes[0]["name"]
            assert res["process.pid"] == events.processes[0]["pid"]
            assert res["host.name"] == events.processes[0]["host"]
            for ss in rs.scope_spans:
                assert ss.scope.name == "liteprof"
                spans.extend(ss.spans)
    assert len(spans) == events.records
    by_id = {s.span_id: s for s in spans}
    assert len(by_id) == len(spans)  # ids unique
    # Spans come in the log's row order, so row i is spans[i].
    for i, span in enumerate(spans):
        assert span.name == events.names[int(events.name[i])]
        assert span.start_time_unix_nano == int(events.start[i])
        assert span.end_time_unix_nano == int(events.start[i] + events.dur[i])
        assert span.kind == span.SPAN_KIND_INTERNAL
        thread = events.threads[int(events.thread[i])]
        attrs = _attrs(span.attributes)
        assert attrs == {"thread.id": thread["tid"], "thread.name": thread["name"]}
        up = int(events.parent[i])
        if up < 0:
            assert span.parent_span_id == b""
        else:
            parent = by_id[span.parent_span_id]
            assert parent is spans[up]
            assert parent.trace_id == span.trace_id  # one trace per root scope
        assert (span.status.code == span.status.STATUS_CODE_ERROR) == bool(events.error[i])
    roots = {s.trace_id for s in spans if not s.parent_span_id}
    assert len(roots) == int((events.parent < 0).sum())
    assert sum(1 for s in spans if s.status.code == s.status.STATUS_CODE_ERROR) == 1


@pytest.mark.parametrize("receiver", [[503, 503]], indirect=True)
def test_retries_a_busy_endpoint(receiver: _Receiver, logdir: str, backend: str) -> None:
    _record_program(logdir)
    proc = cli("export", logdir, "--format", "otlp", "--endpoint", _endpoint(receiver) + "/")
    assert proc.returncode == 0, proc.stderr
    assert (
        sum(
            len(ss.spans)
            for r in receiver.requests
            for rs in r.resource_spans
            for ss in rs.scope_spans
        )
        == read_logs([logdir]).records
    )


@pytest.mark.parametrize("receiver", [[404]], indirect=True)
def test_a_refusal_is_one_line(receiver: _Receiver, logdir: str, backend: str) -> None:
    _record_program(logdir)
    proc = cli("export", logdir, "--format", "otlp", "--endpoint", _endpoint(receiver))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "refused the spans: HTTP 404" in proc.stderr


def test_an_unreachable_endpoint_is_one_line(logdir: str, backend: str) -> None:
    from liteprof.exporters.otlp import OtlpError, OtlpExporter

    _record_program(logdir)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    exporter = OtlpExporter(f"http://127.0.0.1:{port}")
    exporter.retry_delays = (0.01, 0.01)
    with pytest.raises(OtlpError, match="cannot send spans to http://127.0.0.1"):
        exporter.send(read_logs([logdir]))
    proc = cli("export", logdir, "--format", "otlp", "--endpoint", "ftp://127.0.0.1:1")
    assert proc.returncode == 2 and "not an http(s) URL" in proc.stderr
    assert os.path.isdir(logdir)
