"""``--format markdown``: GitHub-flavoured tables."""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Renderer, one_line
from .sections import document


def md_cell(text: str) -> str:
    text = one_line(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("`", "\\`")


def md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(headers))) + "|",
    ]
    for cells in rows:
        lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    return lines


class MarkdownRenderer(Renderer):
    kinds: ClassVar[frozenset[str]] = frozenset({"report", "diff"})

    def render(self, data: dict[str, Any], kind: str = "report") -> str:
        doc = document(data, kind)
        out = [f"# {doc.heading}", ""]
        out += [md_cell(line) + "  " for line in doc.summary]
        for section in doc.sections:
            out.append("")
            if section.title:
                out += [f"## {md_cell(section.title)}", ""]
            rows = section.rows
            if section.indent:
                # Non-breaking spaces: markdown would swallow ordinary leading ones.
                rows = [
                    ["\u00a0\u00a0" * level + cells[0], *cells[1:]]
                    for level, cells in zip(section.indent, rows)
                ]
            out += md_table(section.headers, rows)
        return "\n".join(out)
