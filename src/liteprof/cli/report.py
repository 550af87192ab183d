"""``liteprof report PATH...``: the report of one or more logs."""

from __future__ import annotations

import argparse
import gc
import os
from collections.abc import Iterable, Sequence

from .common import (
    FormatChoices,
    UsageError,
    emit_chunks,
    emit_rendered,
    refuse_overwriting_inputs,
    require_numpy,
)

TYPE_CHECKING = False  # typing costs an import that every liteprof run would pay
if TYPE_CHECKING:
    from typing import Any

    from ..analysis.types import Result

HELP = "report one or more logs"
DESCRIPTION = "Report log directories, liteprof log files or vLLM lite-profiler text logs."
BY_CHOICES = ("process", "thread")


def add_format_arguments(parser: argparse.ArgumentParser) -> None:
    """``--format``, ``--by`` and ``-o``, shared with ``liteprof run``."""
    parser.add_argument(
        "--format",
        choices=FormatChoices("report"),
        default="table",
        metavar="FORMAT",  # a metavar, else argparse lists the choices (imports them) now
        help="%(choices)s (default %(default)s)",
    )
    parser.add_argument(
        "--by",
        choices=BY_CHOICES,
        default=None,
        help="one row per scope and process, or per scope and thread",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE instead of stdout ('-': stdout; html: needed)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH")
    add_format_arguments(parser)
    parser.add_argument(
        "--tree",
        action="store_true",
        help="show the call tree (one row per distinct path of nested scopes)",
    )


def check_output(fmt: str, output: str | None, html: str | None = None) -> None:
    """Fail before any work: an HTML page goes to a file, and needs the ``html`` extra."""
    if fmt == "html" and not output:
        raise UsageError("--format html writes a page to a file: add -o FILE")
    if fmt == "html" or html:
        from ..renderers.html import MissingExtra, plotly_js

        try:
            plotly_js()
        except MissingExtra as exc:
            raise UsageError(str(exc)) from None


def write_file(path: str, chunks: Iterable[str], fmt: str) -> None:
    """Write the text in ``chunks`` to ``path`` as UTF-8 (a name no encoding takes: a
    JSON ``\\u`` escape, elsewhere a backslash escape), replacing the file only once it
    is whole."""
    from ..renderers.json import JSON_ERRORS

    errors = JSON_ERRORS if fmt == "json" else "backslashreplace"
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", errors=errors, newline="") as fh:
            last = ""
            for chunk in chunks:
                if chunk:
                    fh.write(chunk)
                    last = chunk
            if not last.endswith("\n"):
                fh.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def output(data: Result, fmt: str, kind: str, path: str | None, **events: Any) -> None:
    """Render ``data`` to stdout or to ``path``; an HTML page gets the events it draws."""
    from ..renderers import renderer

    if fmt == "html":
        from ..renderers.html import render_html

        assert path is not None  # check_output made sure
        page = render_html(data, "diff" if kind == "diff" else "report", **events)
        if path == "-":  # as for export: stdout (`-o - | ssh host 'cat > page.html'`)
            emit_chunks([page], encoding="utf-8")
        else:
            write_file(path, [page], fmt)
    elif path == "-":
        emit_rendered(data, fmt, kind)
    elif path:
        try:
            chosen = renderer(fmt, kind)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        write_file(path, chosen.stream(data, kind), fmt)
    else:
        emit_rendered(data, fmt, kind)


def report(
    paths: Sequence[str],
    fmt: str,
    by: str | None,
    out: str | None = None,
    html: str | None = None,
    tree: bool = False,
) -> int:
    """Report ``paths`` in ``fmt`` (to ``out`` if given); ``html``: also write the page;
    ``tree``: the call tree instead of the scope tables (an HTML page has both)."""
    check_output(fmt, out, html)
    if tree and by and fmt != "html":
        # The tree is one tree of every process and thread together; its rows have no
        # process or thread column, so a silent --by would look like a per-process tree.
        raise UsageError(
            f"--tree and --by {by} cannot be combined: the call tree is of every process "
            "and thread together"
        )
    # Rendering makes a few small containers per row and no reference cycles: with the
    # collector on, its passes over them cost a third more time on a million rows. Off
    # before the imports too, whose many new objects would set it off again and again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        require_numpy()
        refuse_overwriting_inputs(paths, out, html)
        from ..analysis.report import build_report
        from ..log.reader import read_logs

        events = read_logs(list(paths))
        data = build_report(events, by=by)
        # The report keeps columns of its own; only an HTML page still needs the events.
        kept = {"events": events} if fmt == "html" or html else {}
        del events
        output(data, fmt, "tree" if tree else "report", out, **kept)
        if html:
            output(data, "html", "report", html, **kept)
    finally:
        if collecting:
            gc.enable()
    return 0


def main(args: argparse.Namespace) -> int:
    return report(args.paths, args.format, args.by, args.output, tree=args.tree)
