"""Events -> files for other tools (timeline viewers, flame graphs, query engines).

One module per format behind ``base.Exporter``; ``EXPORTERS`` maps a format name to its
class, and ``liteprof export --format`` takes its choices from it. A format's module
(and numpy, pyarrow...) is imported only when the format is used, so the command line
starts without them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from .base import Exporter, StreamExporter, Window

_WHERE = {
    "perfetto": ("perfetto", "PerfettoExporter"),
    "chrome": ("chrome", "ChromeExporter"),
    "speedscope": ("speedscope", "SpeedscopeExporter"),
    "folded": ("folded", "FoldedExporter"),
    "parquet": ("parquet", "ParquetExporter"),
    "otlp": ("otlp", "OtlpExporter"),
}


class _Registry(Mapping[str, "type[Exporter]"]):
    """Format name -> exporter class, each module imported on first use."""

    def __getitem__(self, name: str) -> type[Exporter]:
        module, cls = _WHERE[name]
        found: type[Exporter] = getattr(importlib.import_module(f".{module}", __name__), cls)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(_WHERE)

    def __len__(self) -> int:
        return len(_WHERE)


EXPORTERS: Mapping[str, type[Exporter]] = _Registry()

__all__ = ["EXPORTERS", "Exporter", "StreamExporter", "Window"]
