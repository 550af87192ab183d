"""What every renderer shares: the base class, the document model, escaping, units.

Text renderers (plain, rich, markdown) draw one ``Document``: summary lines and
``Section`` tables, built once from the analysis result by ``sections.py``. Escaping of
names happens here (``one_line``) and, for markup, in each renderer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from ..analysis.types import Result

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class Renderer:
    """Formats an analysis result as text: a ``Report`` (kind ``"report"``, or
    ``"tree"`` for its call tree) or a ``Diff`` (kind ``"diff"``), the typed objects of
    ``docs/REPORT.md``.

    ``kinds`` says which of these a renderer draws. ``render`` gives the whole text;
    ``stream`` the same text in pieces, for output too large to hold as one string (the
    default yields ``render``'s text).
    """

    kinds: ClassVar[frozenset[str]] = frozenset({"report"})

    def render(self, data: Result, kind: str = "report") -> str:
        raise NotImplementedError

    def stream(self, data: Result, kind: str = "report") -> Iterator[str]:
        yield self.render(data, kind)


@dataclass
class Section:
    """One table: a title, column headers and rows of cells (first column left-aligned).

    ``styles`` optionally gives each row a style name (``"slower"``, ``"faster"``, ...)
    that a renderer with colour may use; ``indent`` gives each row's nesting level, drawn
    before the first cell.
    """

    title: str
    headers: list[str]
    rows: list[list[str]]
    styles: list[str | None] = field(default_factory=list)
    indent: list[int] = field(default_factory=list)


@dataclass
class Document:
    """A rendered result before it is drawn: a heading, summary lines, tables."""

    heading: str
    summary: list[str]
    sections: list[Section]


def one_line(text: str) -> str:
    """``text`` with backslashes and control characters escaped, so a row stays one row."""
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif not ch.isprintable() and ch != " ":
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def shorten(text: str, width: int = 100) -> str:
    if len(text) <= width:
        return text
    half = (width - 1) // 2
    return text[:half] + "…" + text[len(text) - (width - 1 - half) :]


def fmt_seconds(ns: float | int | None) -> str:
    if ns is None:
        return "-"
    return f"{ns / 1e9:.6f}"


def fmt_duration(ns: float | int | None) -> str:
    """A human duration with a unit that fits: ns, µs, ms or s."""
    if ns is None:
        return "-"
    v = float(ns)
    a = abs(v)
    if a < 1e3:
        return f"{v:.0f}ns"
    if a < 1e6:
        return f"{v / 1e3:.2f}µs"
    if a < 1e9:
        return f"{v / 1e6:.2f}ms"
    return f"{v / 1e9:.3f}s"


def fmt_percent(share: float) -> str:
    return f"{100.0 * share:.2f}%"


def fmt_change(change: float | None) -> str:
    """``+12.3%``; ``-`` where the change is undefined."""
    return "-" if change is None else f"{100.0 * change:+.1f}%"
