"""The ``liteprof`` command line: a table of commands, each a module of this package.

Errors are one line on stderr and exit status 2; never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import ModuleType

from .._version import __version__
from . import diff, export, report, run
from .common import EXIT_ERROR, Parser, UsageError, one_line

COMMANDS: dict[str, ModuleType] = {"run": run, "report": report, "diff": diff, "export": export}
"""Command name -> module with ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)`` and
``main(args) -> exit status``."""


def _backend_name() -> str:
    try:
        from ..record.backend import current

        return current.BACKEND
    except Exception:  # pragma: no cover - defensive
        return "unknown"


def parser() -> Parser:
    top = Parser(
        prog="liteprof",
        description="Low-overhead scoped-timing profiler: record, report and compare runs.",
    )
    top.add_argument(
        "--version",
        action="version",
        version=f"liteprof {__version__} (recorder backend: {_backend_name()})",
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, module in COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION))
    return top


def main(argv: Sequence[str] | None = None) -> int:
    top = parser()
    try:
        args = top.parse_args(argv)
        if args.command is None:
            top.print_help()
            return EXIT_ERROR
        return int(COMMANDS[args.command].main(args))
    except UsageError as exc:
        sys.stderr.write(f"liteprof: error: {one_line(exc)}\n")
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
        from ..log.errors import LogError

        if isinstance(exc, LogError):
            sys.stderr.write(f"liteprof: error: {one_line(exc)}\n")
        else:
            sys.stderr.write(f"liteprof: error: {type(exc).__name__}: {one_line(exc)}\n")
        return EXIT_ERROR


__all__ = ["COMMANDS", "main", "parser"]
