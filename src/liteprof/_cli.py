"""The ``liteprof`` command line: ``run``, ``report`` and ``diff``.

Errors are one line on stderr and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ._version import __version__

EXIT_ERROR = 2


class UsageError(Exception):
    """A mistake of the user's: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _backend_name() -> str:
    try:
        from ._api import BACKEND

        return BACKEND
    except Exception:  # pragma: no cover - defensive
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="liteprof",
        description="Low-overhead scoped-timing profiler: record, report and compare runs.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"liteprof {__version__} (recorder backend: {_backend_name()})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="run a command with recording on, then print the report",
        description="Run CMD with LITEPROF_LOG set (every Python process it starts that "
        "imports liteprof records), then print the report. Exit status: CMD's.",
    )
    run.add_argument("--log", metavar="DIR", help="log directory (kept afterwards)")
    run.add_argument("--keep", action="store_true", help="keep the temporary log directory")
    run.add_argument("--format", choices=("table", "json", "csv", "markdown"), default="table")
    run.add_argument("--by", choices=("process", "thread"), default=None)
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")

    report = sub.add_parser(
        "report",
        help="report one or more logs",
        description="Report log directories, liteprof log files or vLLM lite-profiler text logs.",
    )
    report.add_argument("paths", nargs="+", metavar="PATH")
    report.add_argument("--format", choices=("table", "json", "csv", "markdown"), default="table")
    report.add_argument(
        "--by",
        choices=("process", "thread"),
        default=None,
        help="one row per scope and process, or per scope and thread",
    )

    diff = sub.add_parser(
        "diff",
        help="compare two runs scope by scope",
        description="How NEW differs from BASE, scope by scope. A change is 'same' unless "
        "it is statistically significant and larger than --threshold percent.",
    )
    diff.add_argument("base", metavar="BASE")
    diff.add_argument("new", metavar="NEW")
    diff.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    diff.add_argument(
        "--threshold",
        type=_percent,
        default=5.0,
        metavar="PCT",
        help="smallest relative change of the mean that counts (default 5)",
    )
    diff.add_argument(
        "--fail-above",
        type=_percent,
        default=None,
        metavar="PCT",
        help="exit 1 when a scope is slower by more than PCT percent",
    )
    return parser


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value >= 0.0) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a non-negative percentage: {text!r}")
    return value


def _emit(text: str, ascii_text: Callable[[], str] | None = None) -> None:
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


def _load_report_modules() -> Any:
    try:
        import numpy  # noqa: F401
    except ImportError:
        raise UsageError(
            "reading logs needs numpy: pip install numpy (or liteprof[report])"
        ) from None
    from . import _reader

    return _reader


def cmd_report(paths: Sequence[str], fmt: str, by: str | None) -> int:
    reader = _load_report_modules()
    from ._report import build_report
    from .renderers import render

    events = reader.read_logs(list(paths))
    report = build_report(events, by=by)
    _emit(render(report, fmt), (lambda: json.dumps(report, indent=2)) if fmt == "json" else None)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UsageError("run needs a command: liteprof run -- CMD [ARGS...]")
    temporary = args.log is None
    log_dir = args.log if args.log else tempfile.mkdtemp(prefix="liteprof-run-")
    env = dict(os.environ)
    env["LITEPROF_LOG"] = os.path.abspath(log_dir)
    earlier = set(_logs_in(log_dir))  # a reused --log DIR: report this run's logs only
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the child gets it and decides
    try:
        try:
            proc = subprocess.Popen(cmd, env=env)
        except OSError as exc:
            if temporary:
                shutil.rmtree(log_dir, ignore_errors=True)
            raise UsageError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None
        code = proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        new = [f for f in _logs_in(log_dir) if f not in earlier]
        if new:
            cmd_report([log_dir] if not earlier else new, args.format, args.by)
        else:
            sys.stderr.write("liteprof: nothing was recorded (does the program import liteprof?)\n")
    except Exception as exc:  # the command's exit status matters more than the report
        sys.stderr.write(f"liteprof: cannot report {log_dir}: {_one_line(exc)}\n")
    finally:
        if temporary and not args.keep:
            shutil.rmtree(log_dir, ignore_errors=True)
        elif temporary:
            sys.stderr.write(f"liteprof: log kept in {log_dir}\n")
    if code < 0:  # killed by a signal: report it the way a shell does
        return 128 - code
    return code


def _logs_in(directory: str) -> list[str]:
    try:
        return sorted(
            os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".lpf")
        )
    except OSError:
        return []


def cmd_diff(args: argparse.Namespace) -> int:
    reader = _load_report_modules()
    from ._diff import build_diff, regressions, render_diff

    base = reader.read_logs([args.base])
    new = reader.read_logs([args.new])
    result = build_diff(base, new, threshold=args.threshold)
    _emit(render_diff(result, args.format))
    if args.fail_above is not None:
        worse = regressions(result, args.fail_above)
        if worse:
            sys.stderr.write(
                f"liteprof: {len(worse)} scope(s) slower by more than {args.fail_above:g}%: "
                + ", ".join(_one_line(w) for w in worse[:5])
                + ("" if len(worse) <= 5 else ", ...")
                + "\n"
            )
            return 1
    return 0


def _one_line(value: object) -> str:
    text = str(value)
    return " ".join(text.split()) or type(value).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_ERROR
        if args.command == "report":
            return cmd_report(args.paths, args.format, args.by)
        if args.command == "run":
            return cmd_run(args)
        return cmd_diff(args)
    except UsageError as exc:
        sys.stderr.write(f"liteprof: error: {_one_line(exc)}\n")
        return EXIT_ERROR
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the exit flush
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("liteprof: interrupted\n")
        return 130
    except MemoryError:
        sys.stderr.write("liteprof: error: out of memory while reading the logs\n")
        return EXIT_ERROR
    except Exception as exc:
        from ._errors import LogError

        if isinstance(exc, LogError):
            sys.stderr.write(f"liteprof: error: {_one_line(exc)}\n")
        else:
            sys.stderr.write(f"liteprof: error: {type(exc).__name__}: {_one_line(exc)}\n")
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
