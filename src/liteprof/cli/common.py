"""What every command shares: the error type, the parser, writing to stdout."""

from __future__ import annotations

import argparse
import codecs
import os
import sys
from collections.abc import Callable, Iterable, Iterator

TYPE_CHECKING = False  # typing costs an import that every command would pay
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from ..analysis.types import Result

EXIT_ERROR = 2


class UsageError(Exception):
    """A mistake of the user's: reported as one line, exit status 2."""


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` finds it (``COLUMNS``, then
    stdout's terminal, else 80), without importing ``shutil`` and the compression modules
    it brings: argparse builds a formatter for every option it adds."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    stdout = sys.__stdout__
    try:
        return os.get_terminal_size(stdout.fileno()).columns or 80 if stdout else 80
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        width = _columns() - 2 if width is None else width
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class LazyChoices:
    """Choices for argparse read from a registry only when argparse needs them (a value
    given, ``--help``): building a parser then imports no registry (every renderer, every
    exporter), which ``liteprof run`` would pay before the command even starts. Give the
    option a ``metavar``, else argparse lists the choices at once."""

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self._load = names

    def _names(self) -> tuple[str, ...]:
        return tuple(self._load())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


class FormatChoices(LazyChoices):
    """The ``--format`` choices of a kind of result, from the renderers' registry."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(self._formats)

    def _formats(self) -> tuple[str, ...]:
        from ..renderers import formats

        return formats(self.kind)


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


def stdout_encoding() -> str:
    return getattr(sys.stdout, "encoding", None) or "utf-8"


def emit_chunks(
    chunks: Iterable[str], errors: str = "backslashreplace", encoding: str | None = None
) -> None:
    """Write the pieces of one text to stdout as they come, then a newline if the text
    did not end with one.

    The text is encoded with ``encoding`` (default: stdout's). A character that it
    cannot take (a lone surrogate: any, in UTF-8) goes through the error handler
    ``errors``: backslash escapes for text for people, JSON's ``\\uXXXX`` escapes for
    JSON (``renderers.json.JSON_ERRORS``), which every JSON reader decodes to the same
    strings.
    """
    encoding = encoding or stdout_encoding()
    encoder = codecs.getincrementalencoder(encoding)(errors)
    buffer = getattr(sys.stdout, "buffer", None)
    sys.stdout.flush()

    def write(data: bytes) -> None:
        if buffer is None:  # stdout replaced by a text-only stream
            sys.stdout.write(data.decode(encoding))
        else:
            buffer.write(data)

    last = ""
    for chunk in chunks:
        if chunk:
            write(encoder.encode(chunk))
            last = chunk
    write(encoder.encode("" if last.endswith("\n") else "\n", final=True))
    (sys.stdout if buffer is None else buffer).flush()


def emit_rendered(data: Result, fmt: str, kind: str) -> None:
    """Render a report or diff object and write it as it is rendered."""
    from ..renderers import renderer
    from ..renderers.json import JSON_ERRORS

    try:
        chosen = renderer(fmt, kind)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if fmt != "json":
        emit_chunks(chosen.stream(data, kind))
        return
    # JSON is UTF-8 (RFC 8259): on any other stdout, ASCII with escapes, valid in both.
    utf8 = codecs.lookup(stdout_encoding()).name == "utf-8"
    emit_chunks(chosen.stream(data, kind), JSON_ERRORS, "utf-8" if utf8 else "ascii")


def refuse_overwriting_inputs(paths: Iterable[str], *outputs: str | None) -> None:
    """A ``UsageError`` if an output file is one of the logs ``paths`` name: writing it
    would destroy the log (an export opens its output before it reads), a typo's cost."""
    targets: dict[tuple[int, int], str] = {}
    for out in outputs:
        if out is None or out == "-":
            continue
        try:
            st = os.stat(out)
        except OSError:
            continue  # not there yet: it cannot be an input
        targets[(st.st_dev, st.st_ino)] = out
    if not targets:
        return
    from ..log.reader import expand_paths

    for path in expand_paths(list(paths)):
        try:
            st = os.stat(path)
        except OSError:
            continue
        hit = targets.get((st.st_dev, st.st_ino))
        if hit is not None:
            raise UsageError(f"{hit} is one of the logs to read: write to another file")


def require_numpy() -> None:
    """Import numpy, or say how to install it.

    Reading logs never multiplies matrices, yet numpy's OpenBLAS starts a thread per core
    at import, which keeps the cores busy for a while: on a small machine the reader pays
    for it. Unless the user chose a number, one thread is asked for while numpy loads
    (OpenBLAS reads it only then); the variable is gone again afterwards, so no process
    started later inherits it.
    """
    if "numpy" in sys.modules:
        return
    quiet = "OPENBLAS_NUM_THREADS" not in os.environ
    if quiet:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401
    except ImportError:
        raise UsageError(
            "reading logs needs numpy: pip install numpy (or liteprof[report])"
        ) from None
    finally:
        if quiet:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)
