"""``--format json``: the report (or diff) object itself (``docs/REPORT.md``).

Written by hand in a layout that is valid JSON and easy to read, and fast: one key of
the top-level object per line, and each element of a list of objects (a table) on a line
of its own, indented; a table inside such an element (a group's scopes) is opened at the
end of its line and continues on the lines below. Python's encoder with ``indent`` runs
in pure Python (22 s for a million scopes); here each element is one C-level call:
``json.dumps`` for a plain dict, one ``%``-format of a template for a row of ``Rows``,
whose fields' kinds say how to write each value.

Strings keep their characters (``ensure_ascii=False``); ``JSON_ERRORS`` is an encoding
error handler that writes ``\\uXXXX`` escapes, which turns the same text into valid JSON
in any encoding stdout may have (lone surrogates included).
"""

from __future__ import annotations

import codecs
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from json.encoder import encode_basestring
from typing import Any, Callable, ClassVar

from ..analysis import types as T
from .base import Renderer

JSON_ERRORS = "liteprof.json"
"""An encoding error handler: ``\\uXXXX`` escapes (surrogate pairs above U+FFFF)."""

INDENT = "  "


def _escape_errors(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = []
    for ch in exc.object[exc.start : exc.end]:
        code = ord(ch)
        if code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out), exc.end


codecs.register_error(JSON_ERRORS, _escape_errors)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _paths(column: list[list[str]]) -> list[str]:
    esc = encode_basestring
    return [
        "[" + esc(p[0]) + "]" if len(p) == 1 else "[" + ", ".join(map(esc, p)) + "]" for p in column
    ]


def _optional(write: Callable[[Any], str]) -> Callable[[list[Any]], list[str]]:
    def out(column: list[Any]) -> list[str]:
        if column.count(None) == len(column):
            return ["null"] * len(column)
        return ["null" if v is None else write(v) for v in column]

    return out


def _each(write: Callable[[Any], str]) -> Callable[[list[Any]], list[str]]:
    return lambda column: list(map(write, column))


# How each kind of field is written: ints straight into the template (``%d``), the
# others as text that a function makes of the whole column first.
_CONVERT: dict[str, Callable[[list[Any]], list[str]]] = {
    T.FLOAT: _each(float.__repr__),
    T.STR: _each(encode_basestring),
    T.OPT_STR: _optional(encode_basestring),
    T.OPT_INT: _optional(int.__repr__),
    T.OPT_FLOAT: _optional(float.__repr__),
    T.PATH: _paths,
    T.ANY: _each(_dumps),
}


def _is_table(value: object) -> bool:
    """A list of objects: written one element per line."""
    if isinstance(value, T.Rows):
        return len(value) > 0
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


def _template(fields: Sequence[str], direct: Sequence[bool]) -> str:
    """``{"field": %d, "other": %s, ...}``: ``%d`` where the value goes in directly."""
    parts = []
    for field, as_int in zip(fields, direct):
        parts.append(f"{_dumps(field).replace('%', '%%')}: {'%d' if as_int else '%s'}")
    return "{" + ", ".join(parts) + "}"


def _row_blocks(rows: T.Rows[Any], indent: str) -> Iterator[str]:
    """The rows of ``rows``, one per line, in blocks of lines joined by ``,\n``."""
    if T.ROWS in rows.kinds:  # rows holding tables: each through the general writer
        for row in rows:
            yield indent + "".join(_object(row, indent))
        return
    templates: dict[tuple[bool, ...], str] = {}
    for block in rows.blocks():
        # A list given for several int fields (one array behind them) is made text once.
        uses = Counter(id(c) for c, k in zip(block, rows.kinds) if k == T.INT)
        made: dict[int, list[str]] = {}
        cols = []
        direct = []
        for kind, col in zip(rows.kinds, block):
            if kind == T.INT and uses[id(col)] == 1:
                cols.append(col)
                direct.append(True)
                continue
            if kind == T.INT:
                text = made.get(id(col))
                if text is None:
                    text = made[id(col)] = list(map(int.__repr__, col))
            else:
                text = _CONVERT[kind](col)
            cols.append(text)
            direct.append(False)
        key = tuple(direct)
        template = templates.get(key)
        if template is None:
            template = templates[key] = indent + _template(rows.fields, direct)
        yield ",\n".join(map(template.__mod__, zip(*cols)))


def _table(value: Sequence[Any], indent: str) -> Iterator[str]:
    """The elements of a table, one per line, separated by commas (no brackets)."""
    if isinstance(value, T.Rows):
        lines: Iterable[str] = _row_blocks(value, indent)
    else:
        lines = (
            indent + ("".join(_object(item, indent)) if isinstance(item, dict) else _dumps(item))
            for item in value
        )
    for i, line in enumerate(lines):
        if i:
            yield ",\n"
        yield line


def _object(obj: Mapping[str, Any], indent: str) -> Iterator[str]:
    """A dict on one line, except that a table inside continues on the lines below."""
    if not any(_is_table(v) for v in obj.values()):
        yield _dumps(T.plain(dict(obj)))
        return
    yield "{"
    for i, (key, value) in enumerate(obj.items()):
        yield (", " if i else "") + _dumps(key) + ": "
        if _is_table(value):
            yield "[\n"
            yield from _table(value, indent + INDENT)
            yield "\n" + indent + "]"
        else:
            yield _dumps(T.plain(value))
    yield "}"


def json_chunks(data: Mapping[str, Any]) -> Iterator[str]:
    """The JSON text of ``data`` in pieces (a report of a million scopes is never one
    string); ``"".join`` them for the whole."""
    yield "{"
    for i, (key, value) in enumerate(data.items()):
        yield ("," if i else "") + "\n" + INDENT + _dumps(key) + ": "
        if _is_table(value):
            yield "[\n"
            yield from _batched(_table(value, INDENT * 2))
            yield "\n" + INDENT + "]"
        elif isinstance(value, (list, T.Rows)) and len(value) == 0:
            yield "[]"
        else:
            yield _dumps(T.plain(value))
    yield "\n}\n"


def _batched(pieces: Iterable[str], size: int = 1 << 20) -> Iterator[str]:
    """Small pieces joined into strings of about ``size`` characters."""
    buf: list[str] = []
    n = 0
    for piece in pieces:
        buf.append(piece)
        n += len(piece)
        if n >= size:
            yield "".join(buf)
            buf, n = [], 0
    if buf:
        yield "".join(buf)


class JsonRenderer(Renderer):
    kinds: ClassVar[frozenset[str]] = frozenset({"report", "tree", "diff"})

    def stream(self, data: T.Result, kind: str = "report") -> Iterator[str]:
        return json_chunks(data)

    def render(self, data: T.Result, kind: str = "report") -> str:
        return "".join(self.stream(data, kind))
