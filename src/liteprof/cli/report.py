"""``liteprof report PATH...``: the report of one or more logs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .common import emit_rendered, require_numpy

HELP = "report one or more logs"
DESCRIPTION = "Report log directories, liteprof log files or vLLM lite-profiler text logs."
BY_CHOICES = ("process", "thread")


def add_format_arguments(parser: argparse.ArgumentParser) -> None:
    """``--format`` and ``--by``, shared with ``liteprof run``."""
    from ..renderers import formats

    parser.add_argument("--format", choices=formats("report"), default="table")
    parser.add_argument(
        "--by",
        choices=BY_CHOICES,
        default=None,
        help="one row per scope and process, or per scope and thread",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH")
    add_format_arguments(parser)


def report(paths: Sequence[str], fmt: str, by: str | None) -> int:
    require_numpy()
    from ..analysis.report import build_report
    from ..log.reader import read_logs

    events = read_logs(list(paths))
    emit_rendered(build_report(events, by=by), fmt, "report")
    return 0


def main(args: argparse.Namespace) -> int:
    return report(args.paths, args.format, args.by)
