"""``--format json``: the report (or diff) object itself (``docs/REPORT.md``).

Written by hand in a layout that is valid JSON and easy to read, and fast: one key of
the top-level object per line, and each element of a list of objects (a table) on a line
of its own, indented; a table inside such an element (a group's scopes) is opened at the
end of its line and continues on the lines below. Python's encoder with ``indent`` runs
in pure Python (22 s for a million scopes); here a plain dict is one ``json.dumps``, and
the rows of ``Rows`` are written a block at a time, each column made text in one C-level
``map`` (the fields' kinds say how), then the whole block joined in one call.

Strings keep their characters (``ensure_ascii=False``); ``JSON_ERRORS`` is an encoding
error handler that writes ``\\uXXXX`` escapes, which turns the same text into valid JSON
in any encoding stdout may have (lone surrogates included).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain, repeat
from json.encoder import ESCAPE, encode_basestring
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
        nones = column.count(None)
        if nones == len(column):
            return ["null"] * len(column)
        if nones == 0:
            return list(map(write, column))
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


def _ints(column: list[Any]) -> list[str]:
    """Ints as ``%d`` writes them (``int.__repr__`` at C speed; ``%d`` for anything else
    an int field may hold, a float or a numpy integer)."""
    try:
        return list(map(int.__repr__, column))
    except TypeError:
        return list(map("%d".__mod__, column))


# Kinds whose values write the same text whenever they compare equal (not floats: 0.0 ==
# -0.0; not JSON values: 1 == 1.0): a column of one such value is written as a literal.
_FOLDABLE = frozenset({T.INT, T.OPT_INT, T.STR, T.OPT_STR})


def _convert(kind: str, column: list[Any]) -> list[str]:
    if kind == T.INT:
        return _ints(column)
    if kind in (T.STR, T.OPT_STR) and len(column) >= 256 and len(set(column[:64])) <= 16:
        # Few distinct texts (a group, a parent): each escaped once.
        memo = {v: "null" if v is None else encode_basestring(v) for v in dict.fromkeys(column)}
        return list(map(memo.__getitem__, column))
    return _CONVERT[kind](column)


def _plain(texts: list[str]) -> bool:
    """Whether JSON writes each of ``texts`` as it is, between quotes (nothing to escape:
    one search over them all instead of an ``encode_basestring`` each)."""
    joined = "".join(texts)
    if '"' in joined or "\\" in joined:
        return False
    # No control character where all are printable (a C loop several times faster than
    # the search, which settles the rest: U+2028, lone surrogates, ...).
    return joined.isprintable() or ESCAPE.search(joined) is None


def _whole(column: list[Any], block: list[list[Any]], kinds: Sequence[str]) -> list[Any] | None:
    """An int column of ``block`` equal to the float ``column``, where each float is then
    written as that int and ``.0`` (positive and below 2**53: exact, no exponent, no
    ``-0.0``); ``None`` if there is none. A mean of one event per row is its total."""
    for kind, other in zip(kinds, block):
        if kind == T.INT and other == column and min(other) > 0 and max(other) < 1 << 53:
            return other
    return None


def _row_blocks(rows: T.Rows[Any], indent: str) -> Iterator[str]:
    """The rows of ``rows``, one per line, in blocks of lines joined by ``,\n``.

    Each block is one ``str.join`` of its pieces, taken in turn from each column's text
    and the literal text between the values: several times faster than a ``%``-format
    per row, which parses its template again for every row. What every row of a block
    shares is written into the literals: a column of one value (each event counted
    once, no errors), the brackets of paths of one name each, the ``.0`` of floats that
    are whole numbers of an int column (means of one event), and the quotes of texts
    with nothing to escape.
    """
    if T.ROWS in rows.kinds:  # rows holding tables: each through the general writer
        for row in rows:
            yield indent + "".join(_object(row, indent))
        return
    keys = [_dumps(field) + ": " for field in rows.fields]
    for block in rows.blocks():
        n = len(block[0])
        # A list given for several fields (one array behind them) is made text once.
        made: dict[int, list[str]] = {}

        def text_of(kind: str, col: list[Any], made: dict[int, list[str]] = made) -> list[str]:
            text = made.get(id(col))
            if text is None:
                text = made[id(col)] = _convert(kind, col)
            return text

        literal = "{"
        segments: list[tuple[str, list[str]]] = []  # (literal before, values)
        for i, (kind, col) in enumerate(zip(rows.kinds, block)):
            literal += (", " if i else "") + keys[i]
            if kind in _FOLDABLE and col[0] == col[-1] and col.count(col[0]) == n:
                literal += _convert(kind, col[:1])[0]
                continue
            if kind == T.STR and _plain(col):
                segments.append((literal + '"', col))  # the quotes go into the literals
                literal = '"'
                continue
            if kind == T.PATH and max(map(len, col)) == 1 == min(map(len, col)):
                # Paths of one name each (roots): the name's text between brackets, made
                # once where the name is also a column of its own (the node's name).
                firsts = [p[0] for p in col]
                same = [c for k, c in zip(rows.kinds, block) if k == T.STR and c == firsts]
                names = same[0] if same else firsts
                if _plain(names):
                    segments.append((literal + '["', names))
                    literal = '"]'
                else:
                    segments.append((literal + "[", text_of(T.STR, names)))
                    literal = "]"
                continue
            whole = _whole(col, block, rows.kinds) if kind == T.FLOAT else None
            if whole is not None:
                segments.append((literal, text_of(T.INT, whole)))
                literal = ".0"
                continue
            segments.append((literal, text_of(kind, col)))
            literal = ""
        literal += "}"
        if not segments:  # every row the same
            yield indent + literal + ("," + "\n" + indent + literal) * (n - 1)
            continue
        first, values = segments[0]
        pieces: list[Iterable[str]] = [
            chain((indent + first,), repeat(",\n" + indent + first, n - 1)),
            values,
        ]
        for before, values in segments[1:]:
            pieces.append(repeat(before, n))
            pieces.append(values)
        pieces.append(repeat(literal, n))
        yield "".join(chain.from_iterable(zip(*pieces)))


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
