"""``--format markdown``: GitHub-flavoured tables."""

from __future__ import annotations

from typing import ClassVar

from ..analysis.types import Result
from .base import Renderer, one_line
from .sections import document


def md_cell(text: str) -> str:
    text = one_line(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("`", "\\`")


def md_table(
    headers: list[str], rows: list[list[str]], indent: list[int] | None = None
) -> list[str]:
    """A table; ``indent`` gives each row's nesting level, drawn before its first cell
    as non-breaking spaces (markdown would swallow ordinary leading ones)."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(headers))) + "|",
    ]
    for i, cells in enumerate(rows):
        texts = [md_cell(c) for c in cells]
        if indent and i < len(indent) and texts:
            texts[0] = "\u00a0\u00a0" * indent[i] + texts[0]
        lines.append("| " + " | ".join(texts) + " |")
    return lines


class MarkdownRenderer(Renderer):
    kinds: ClassVar[frozenset[str]] = frozenset({"report", "tree", "diff"})

    def render(self, data: Result, kind: str = "report") -> str:
        doc = document(data, kind)
        out = [f"# {doc.heading}", ""]
        out += [md_cell(line) + "  " for line in doc.summary]
        for section in doc.sections:
            out.append("")
            if section.title:
                out += [f"## {md_cell(section.title)}", ""]
            out += md_table(section.headers, section.rows, section.indent)
        return "\n".join(out)
