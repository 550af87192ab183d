"""What every command shares: the error type, the parser, writing to stdout."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

EXIT_ERROR = 2


class UsageError(Exception):
    """A mistake of the user's: reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def one_line(value: object) -> str:
    text = str(value)
    return " ".join(text.split()) or type(value).__name__


def percent(text: str) -> float:
    """An argparse type: a finite, non-negative percentage."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value >= 0.0) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a non-negative percentage: {text!r}")
    return value


def emit(text: str, ascii_text: Callable[[], str] | None = None) -> None:
    """Write ``text`` and a newline to stdout, whatever characters it holds.

    Scope names may be any ``str``, lone surrogates included, which no encoding accepts
    (a strict stdout raises, a ``surrogateescape`` one writes invalid UTF-8). Where stdout's
    encoding cannot take the text, ``ascii_text()`` is written instead when given (JSON:
    the same document with ``\\uXXXX`` escapes, which every JSON reader decodes to the same
    strings), else the characters are backslash-escaped.
    """
    if not text.endswith("\n"):
        text += "\n"
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        if ascii_text is not None:
            text = ascii_text() + "\n"
        data = text.encode(encoding, "backslashreplace")
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # stdout replaced by a text-only stream
        sys.stdout.write(data.decode(encoding))
        sys.stdout.flush()
        return
    sys.stdout.flush()
    buffer.write(data)
    buffer.flush()


def emit_rendered(data: dict[str, Any], fmt: str, kind: str) -> None:
    """Render a report or diff object and write it; JSON falls back to ASCII escapes."""
    from ..renderers import render

    fallback = (lambda: json.dumps(data, indent=2)) if fmt == "json" else None
    emit(render(data, fmt, kind), fallback)


def require_numpy() -> None:
    try:
        import numpy  # noqa: F401
    except ImportError:
        raise UsageError(
            "reading logs needs numpy: pip install numpy (or liteprof[report])"
        ) from None
