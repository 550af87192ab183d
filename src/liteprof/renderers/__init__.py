"""Output formats of ``liteprof report``: one module each, chosen by name."""

from __future__ import annotations

from typing import Any

from .base import Renderer
from .csv import CsvRenderer
from .json import JsonRenderer
from .markdown import MarkdownRenderer
from .table import PlainTableRenderer, RichTableRenderer, TableRenderer

RENDERERS: dict[str, type[Renderer]] = {
    "table": TableRenderer,
    "plain": PlainTableRenderer,
    "rich": RichTableRenderer,
    "json": JsonRenderer,
    "csv": CsvRenderer,
    "markdown": MarkdownRenderer,
}

REPORT_FORMATS = ("table", "json", "csv", "markdown")


def render(report: dict[str, Any], fmt: str = "table") -> str:
    """Render a report object (see ``_report.build_report``) in format ``fmt``."""
    try:
        cls = RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(RENDERERS)}") from None
    return cls().render(report)


__all__ = ["RENDERERS", "REPORT_FORMATS", "Renderer", "render"]
