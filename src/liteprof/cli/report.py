"""``liteprof report PATH...``: the report of one or more logs."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import Any

from .common import UsageError, emit_rendered, require_numpy

HELP = "report one or more logs"
DESCRIPTION = "Report log directories, liteprof log files or vLLM lite-profiler text logs."
BY_CHOICES = ("process", "thread")


def add_format_arguments(parser: argparse.ArgumentParser) -> None:
    """``--format``, ``--by`` and ``-o``, shared with ``liteprof run``."""
    from ..renderers import formats

    parser.add_argument("--format", choices=formats("report"), default="table")
    parser.add_argument(
        "--by",
        choices=BY_CHOICES,
        default=None,
        help="one row per scope and process, or per scope and thread",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE instead of stdout (html: needed)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH")
    add_format_arguments(parser)


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


def write_file(path: str, text: str, fmt: str, data: dict[str, Any]) -> None:
    """Write ``text`` to ``path`` as UTF-8 (a name no encoding takes: JSON's ASCII form,
    elsewhere a backslash escape), replacing the file only once it is whole."""
    if not text.endswith("\n"):
        text += "\n"
    try:
        payload = text.encode("utf-8")
    except UnicodeEncodeError:
        if fmt == "json":
            text = json.dumps(data, indent=2) + "\n"
        payload = text.encode("utf-8", "backslashreplace")
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def output(data: dict[str, Any], fmt: str, kind: str, path: str | None, **events: Any) -> None:
    """Render ``data`` to stdout or to ``path``; an HTML page gets the events it draws."""
    from ..renderers import render

    if fmt == "html":
        from ..renderers.html import render_html

        assert path is not None  # check_output made sure
        write_file(path, render_html(data, kind, **events), fmt, data)
    elif path:
        write_file(path, render(data, fmt, kind), fmt, data)
    else:
        emit_rendered(data, fmt, kind)


def report(
    paths: Sequence[str],
    fmt: str,
    by: str | None,
    out: str | None = None,
    html: str | None = None,
) -> int:
    """Report ``paths`` in ``fmt`` (to ``out`` if given); ``html``: also write the page."""
    check_output(fmt, out, html)
    require_numpy()
    from ..analysis.report import build_report
    from ..log.reader import read_logs

    events = read_logs(list(paths))
    data = build_report(events, by=by)
    output(data, fmt, "report", out, events=events)
    if html:
        output(data, "html", "report", html, events=events)
    return 0


def main(args: argparse.Namespace) -> int:
    return report(args.paths, args.format, args.by, args.output)
