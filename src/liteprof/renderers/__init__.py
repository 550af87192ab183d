"""Analysis results -> text for people: one module per format, chosen by name.

``RENDERERS`` maps a format name to its class; each class says which results it draws
(``kinds``: ``"report"``, ``"tree"`` (a report's call tree), ``"diff"``). The command
line takes its ``--format`` choices from here.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..analysis.types import Result
from .base import Renderer
from .csv import CsvRenderer
from .html import HtmlRenderer
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
    "html": HtmlRenderer,
}

_INTERNAL = ("plain", "rich")  # what ``table`` picks from; not offered on the command line


def formats(kind: str) -> tuple[str, ...]:
    """The ``--format`` choices for a kind of result (``"report"``, ``"tree"``, ``"diff"``)."""
    return tuple(n for n, c in RENDERERS.items() if kind in c.kinds and n not in _INTERNAL)


def renderer(fmt: str, kind: str = "report") -> Renderer:
    """The renderer of format ``fmt`` for ``kind``; ``ValueError`` if there is none."""
    cls = RENDERERS.get(fmt)
    if cls is None or kind not in cls.kinds:
        choices = ", ".join(n for n, c in RENDERERS.items() if kind in c.kinds)
        raise ValueError(f"unknown {kind} format {fmt!r}; choose from {choices}")
    return cls()


def render(data: Result, fmt: str = "table", kind: str = "report") -> str:
    """Render a report or diff object in format ``fmt``."""
    return renderer(fmt, kind).render(data, kind)


def stream(data: Result, fmt: str = "table", kind: str = "report") -> Iterator[str]:
    """``render``'s text in pieces (``Renderer.stream``)."""
    return renderer(fmt, kind).stream(data, kind)


__all__ = ["RENDERERS", "Renderer", "formats", "render", "renderer", "stream"]
