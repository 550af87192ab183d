"""Peers measured next to liteprof: codetiming, nvtx, OpenTelemetry, torch.

Each is optional: one that is not importable keeps ``namespace=None`` and a note, and
its row is skipped. Imported only inside ``setup_peers()`` (they are heavy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .kernels import Row


@dataclass
class Peer:
    """A peer's row and what it records."""

    key: str
    label: str
    package: str
    records: str  # what it records without an external tool
    row: Row
    namespace: dict[str, Any] | None = None
    version: str | None = None
    note: str = ""
    cleanup: Callable[[], str] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON-able description (without the row and its objects)."""
        return {
            "key": self.key,
            "label": self.label,
            "package": self.package,
            "version": self.version,
            "records": self.records,
            "note": self.note,
            "measured": self.namespace is not None,
        }


def _version(dist: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return None


def setup_peers(tmpdir: str) -> list[Peer]:
    """Every peer, importable or not (``namespace`` is ``None`` for a missing one)."""
    peers: list[Peer] = []

    p = Peer(
        "codetiming",
        "`with codetiming.Timer(name, logger=None)`",
        "codetiming",
        "yes: accumulates every elapsed time in memory (`Timer.timers`)",
        Row(
            "peer_codetiming",
            "codetiming",
            'with Timer("Bench:codetiming", logger=None):\n    pass',
            ("Timer",),
            hot=False,
        ),
    )
    try:
        from codetiming import Timer as CTimer

        p.namespace = {"Timer": CTimer}
        p.version = _version("codetiming")
    except ImportError:
        p.note = "skipped: codetiming is not installed"
    peers.append(p)

    p = Peer(
        "nvtx",
        "`with nvtx.annotate(name)`",
        "nvtx",
        "**nothing** unless an NVTX tool (Nsight Systems) is attached",
        Row(
            "peer_nvtx", "nvtx", 'with nvtx.annotate("Bench:nvtx"):\n    pass', ("nvtx",), hot=False
        ),
    )
    try:
        import nvtx

        p.namespace = {"nvtx": nvtx}
        p.version = _version("nvtx")
    except Exception as exc:  # ImportError, or a broken native library
        p.note = f"skipped: nvtx is not importable ({type(exc).__name__})"
    peers.append(p)

    p = Peer(
        "otel",
        "opentelemetry-sdk span, `BatchSpanProcessor` to an exporter that drops spans",
        "opentelemetry-sdk",
        "yes: spans go through the batch processor's queue to the exporter (which drops them here)",
        Row(
            "peer_otel",
            "opentelemetry",
            'with tracer.start_as_current_span("Bench:otel"):\n    pass',
            ("tracer",),
            hot=False,
        ),
    )
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class DropExporter(SpanExporter):  # type: ignore[misc]
            def __init__(self) -> None:
                self.exported = 0

            def export(self, spans: Any) -> Any:
                self.exported += len(spans)
                return SpanExportResult.SUCCESS

            def shutdown(self) -> None:
                return None

        exporter = DropExporter()
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("liteprof-bench")
        p.namespace = {"tracer": tracer}
        p.version = _version("opentelemetry-sdk")

        def otel_cleanup(provider: Any = provider, exporter: DropExporter = exporter) -> str:
            provider.shutdown()
            return f"the exporter received {exporter.exported:,} spans"

        p.cleanup = otel_cleanup
    except ImportError:
        p.note = "skipped: opentelemetry-sdk is not installed"
    peers.append(p)

    p = Peer(
        "torch",
        "`with torch.profiler.record_function(name)`",
        "torch",
        "**nothing** unless a torch profiler (`torch.profiler.profile`) is active",
        Row(
            "peer_torch",
            "torch",
            'with record_function("Bench:torch"):\n    pass',
            ("record_function",),
            hot=False,
        ),
    )
    try:
        import torch
        import torch.profiler

        p.namespace = {"record_function": torch.profiler.record_function}
        p.version = torch.__version__
    except Exception as exc:
        p.note = f"skipped: torch is not importable ({type(exc).__name__})"
    peers.append(p)
    return peers
