"""``liteprof export PATH... --format FMT -o FILE``: events for other tools."""

from __future__ import annotations

import argparse
import math
import os
import sys

from .common import LazyChoices, UsageError, refuse_overwriting_inputs, require_numpy

TYPE_CHECKING = False  # typing costs an import that every liteprof command would pay
if TYPE_CHECKING:
    from typing import Any, BinaryIO

HELP = "export events to Perfetto, Chrome trace, speedscope, folded stacks, Parquet or OTLP"
DESCRIPTION = (
    "Write the events of log directories or files for other tools: perfetto "
    "(ui.perfetto.dev), chrome (chrome://tracing), speedscope, folded (flame graphs), "
    "parquet (DuckDB, pandas, polars), or send them as OpenTelemetry spans (otlp)."
)
BROWSER_LIMIT = 1 << 30
"""About what a browser-based viewer loads (ui.perfetto.dev, speedscope, chrome://tracing)."""
_BROWSER_FORMATS = ("perfetto", "chrome", "speedscope")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number of seconds: {text!r}")
    return value


def _nanoseconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of ns: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number of ns: {text!r}")
    return value


def _exporters() -> list[str]:
    from ..exporters import EXPORTERS

    return list(EXPORTERS)


def add_export_arguments(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """The format, output and filters; ``liteprof run`` shares them (as ``--export``)."""
    fmt = "--export" if prefix else "--format"
    parser.add_argument(
        fmt,
        dest="export_format",
        choices=LazyChoices(_exporters),  # no exporter imported to build the parser
        required=not prefix,
        metavar="FMT",
        help="one of: %(choices)s",
    )
    if not prefix:  # liteprof run has its -o already (the export's file with --export)
        parser.add_argument(
            "-o", "--output", metavar="FILE", help="the file to write ('-': stdout)"
        )
    parser.add_argument(
        "--endpoint", metavar="URL", help="otlp: the collector, e.g. http://127.0.0.1:4318"
    )
    parser.add_argument("--since", type=_seconds, metavar="S", help="seconds from the first event")
    parser.add_argument("--until", type=_seconds, metavar="S", help="seconds from the first event")
    parser.add_argument("--min-dur", type=_nanoseconds, metavar="NS", help="only events this long")
    parser.add_argument("--name", metavar="GLOB", help="only scopes whose name matches")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH")
    add_export_arguments(parser)


def check(args: argparse.Namespace, flag: str = "--format") -> None:
    """Refuse a contradictory command line before anything is read (or run)."""
    fmt = args.export_format
    if fmt == "otlp":
        if not args.endpoint:
            raise UsageError(f"{flag} otlp needs --endpoint URL (e.g. http://127.0.0.1:4318)")
        if args.output:
            raise UsageError(f"{flag} otlp sends spans to --endpoint; it writes no file (-o)")
    else:
        if not args.output:
            raise UsageError(f"{flag} {fmt} needs -o FILE")
        if args.endpoint:
            raise UsageError("--endpoint is for --format otlp only")
    if args.since is not None and args.until is not None and args.until < args.since:
        raise UsageError("--until is before --since")


def export(paths: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Read ``paths`` and export them as ``args`` say; returns the exporter's summary."""
    require_numpy()
    from ..exporters import EXPORTERS, Window, source

    fmt = args.export_format
    cls: Any = EXPORTERS[fmt]
    if cls.needs:
        try:
            __import__(cls.needs)
        except ImportError:
            raise UsageError(
                f"the {fmt} format needs {cls.needs}: pip install 'liteprof[{fmt}]'"
            ) from None
    window = Window(args.since, args.until, args.min_dur, args.name)
    exporter: Any = cls(args.endpoint) if fmt == "otlp" else cls()
    if cls.streams:
        source.keep_freed_memory()
        wants_origin = hasattr(exporter, "origin_ns")
        first = source.first_start(paths) if window.needs_first or wants_origin else None
        if wants_origin:
            exporter.origin_ns = first
        with _output(args.output) as out:
            exporter.begin(out)
            source.stream(paths, lambda chunk: exporter.feed(chunk, window.mask(chunk, first)))
            exporter.end()
    else:
        from ..log.reader import read_logs

        if cls.timeline:
            source.binary_files(paths)  # text logs are refused before anything is read
        events = source.select(read_logs(paths), window)
        if fmt == "otlp":
            exporter.send(events)
        else:
            with _output(args.output) as out:
                exporter.write(events, out)
    if fmt in _BROWSER_FORMATS and args.output not in (None, "-"):
        size = os.path.getsize(args.output)
        if size > BROWSER_LIMIT:
            sys.stderr.write(
                f"liteprof: warning: {args.output} is {size / 2**30:.1f} GiB, more than a "
                "browser-based viewer loads (about 1 GiB): narrow it with --since/--until "
                "(seconds), --min-dur NS or --name GLOB\n"
            )
    summary: dict[str, Any] = getattr(exporter, "summary", dict)()
    return summary


class _output:
    """The output file (``-``: stdout's bytes), removed again when the export fails."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fh: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        if self.path == "-":
            sys.stdout.flush()
            return sys.stdout.buffer
        try:
            self.fh = open(self.path, "wb")  # noqa: SIM115 - closed in __exit__
        except OSError as exc:
            raise UsageError(f"cannot write {self.path}: {exc.strerror}") from None
        return self.fh

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        # Reading errors arrive here as LogError: an OSError is the output's (a full
        # disk); a closed pipe (BrokenPipeError) is left to the quiet stop of main().
        failed = exc if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError) else None
        if self.fh is None:
            try:
                sys.stdout.buffer.flush()
            except BrokenPipeError:
                raise
            except OSError as err:
                failed = failed or err
            if failed is not None:
                raise UsageError(f"cannot write {self.path}: {failed.strerror}") from None
            return
        try:
            self.fh.close()
        except OSError as err:
            failed = failed or (err if kind is None else None)
        if kind is not None or failed is not None:
            try:
                os.unlink(self.path)  # half a trace would only mislead
            except OSError:
                pass
        if failed is not None:
            raise UsageError(f"cannot write {self.path}: {failed.strerror}") from None


def main(args: argparse.Namespace) -> int:
    check(args)
    refuse_overwriting_inputs(args.paths, args.output)
    export(list(args.paths), args)
    return 0
