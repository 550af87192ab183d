"""The ``liteprof`` command line: a table of commands, each a module of this package.

Errors are one line on stderr and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from . import diff, export, report, run, serve, top
from .common import EXIT_ERROR, Parser, UsageError, one_line

TYPE_CHECKING = False  # typing costs an import that every command would pay
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

COMMANDS: dict[str, ModuleType] = {
    "run": run,
    "report": report,
    "diff": diff,
    "export": export,
    "top": top,
    "serve": serve,
}
"""Command name -> module with ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)`` and
``main(args) -> exit status``."""


class _Version(argparse.Action):
    """``--version``: the recorder backend is looked up only when it is asked for, so the
    other commands never load the recorder just to build their parser."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        try:
            from ..record.backend import current

            backend = current.BACKEND
        except Exception:  # pragma: no cover - defensive
            backend = "unknown"
        sys.stdout.write(f"liteprof {__version__} (recorder backend: {backend})\n")
        parser.exit()


def _command_in(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first word that is not an option), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def parser(command: str | None = None) -> Parser:
    """The parser; with ``command``, only that command's options are set up (the others
    are listed by name), which spares each run importing what the others need."""
    top = Parser(
        prog="liteprof",
        description="Low-overhead scoped-timing profiler: record, report and compare runs.",
    )
    top.add_argument("--version", action=_Version)
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, module in COMMANDS.items():
        command_parser = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION)
        if command is None or name == command:
            module.add_arguments(command_parser)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    top = parser(_command_in(argv))
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
