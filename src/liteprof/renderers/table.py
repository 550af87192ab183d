"""``--format table``: rich on a terminal, plain aligned text when piped."""

from __future__ import annotations

import io
import sys
from typing import ClassVar

from ..analysis.types import Result
from .base import Renderer, Section, shorten
from .sections import document

NAME_WIDTH = 100
"""Longest name a text table shows (the middle is elided); markdown shows them whole."""
_RICH_STYLES = {"slower": "red", "faster": "green", "added": "cyan", "removed": "magenta"}


def plain_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [len(h) for h in headers]
    for cells in rows:
        for i, c in enumerate(cells):
            widths[i] = max(widths[i], len(c))

    def line(cells: list[str]) -> str:
        parts = [cells[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [line(headers), rule] + [line(c) for c in rows]


def _first_cells(section: Section, width: int) -> list[list[str]]:
    """Rows with the first cell shortened to ``width`` and indented by nesting level."""
    out = []
    for i, cells in enumerate(section.rows):
        level = section.indent[i] if i < len(section.indent) else 0
        out.append(["  " * level + shorten(cells[0], width), *cells[1:]])
    return out


class PlainTableRenderer(Renderer):
    kinds: ClassVar[frozenset[str]] = frozenset({"report", "tree", "diff"})

    def render(self, data: Result, kind: str = "report") -> str:
        doc = document(data, kind)
        out = list(doc.summary)
        for section in doc.sections:
            out.append("")
            if section.title:
                out.append(section.title)
            out += plain_table(section.headers, _first_cells(section, NAME_WIDTH))
        return "\n".join(out)


class RichTableRenderer(Renderer):
    kinds: ClassVar[frozenset[str]] = frozenset({"report", "tree", "diff"})

    def render(self, data: Result, kind: str = "report") -> str:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        doc = document(data, kind)
        buf = io.StringIO()
        # A diff has more figures beside each name: a wider console, shorter names.
        width, name_width = (200, 60) if kind == "diff" else (160, NAME_WIDTH)
        console = Console(file=buf, force_terminal=sys.stdout.isatty(), width=width)
        for line in doc.summary:
            console.print(Text(line))
        for section in doc.sections:
            table = Table(title=section.title or None, title_justify="left")
            for i, h in enumerate(section.headers):
                table.add_column(
                    h,
                    justify="left" if i == 0 else "right",
                    overflow="ellipsis",
                    no_wrap=True,
                    min_width=None if i == 0 or kind != "diff" else len(h),
                )
            for i, cells in enumerate(_first_cells(section, name_width)):
                texts = [Text(c) for c in cells]
                style = section.styles[i] if i < len(section.styles) else None
                if style in _RICH_STYLES:
                    texts[-1].stylize(_RICH_STYLES[style])
                table.add_row(*texts)
            console.print(table)
        return buf.getvalue().rstrip("\n")


class TableRenderer(Renderer):
    """Rich when writing to a terminal and rich is installed; plain text otherwise."""

    kinds: ClassVar[frozenset[str]] = frozenset({"report", "tree", "diff"})

    def render(self, data: Result, kind: str = "report") -> str:
        if sys.stdout.isatty():
            try:
                import rich  # noqa: F401
            except ImportError:
                pass
            else:
                return RichTableRenderer().render(data, kind)
        return PlainTableRenderer().render(data, kind)
