"""Events -> files for other tools (timeline viewers, flame graphs, query engines).

One module per format behind ``base.Exporter``; ``EXPORTERS`` maps a format name to its
class, and ``liteprof export --format`` takes its choices from it.
"""

from __future__ import annotations

from .base import Exporter

EXPORTERS: dict[str, type[Exporter]] = {}

__all__ = ["EXPORTERS", "Exporter"]
