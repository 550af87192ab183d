"""``liteprof run -- CMD``: run a command with recording on, then report the whole run."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from ..log.format import SUFFIX
from .common import UsageError, one_line
from .export import add_export_arguments, export
from .export import check as check_export
from .report import add_format_arguments, check_output, report

HELP = "run a command with recording on, then print the report"
DESCRIPTION = (
    "Run CMD with LITEPROF_LOG set (every Python process it starts that imports liteprof "
    "records), then print the report. Exit status: CMD's."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log", metavar="DIR", help="log directory (kept afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary log directory")
    add_format_arguments(parser)
    parser.add_argument("--html", metavar="FILE", help="also write the report as an HTML page")
    # --export FMT (-o FILE then names the export's file), after the report.
    add_export_arguments(parser, prefix="run")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")


def _logs_in(directory: str) -> list[str]:
    try:
        return sorted(
            os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(SUFFIX)
        )
    except OSError:
        return []


def main(args: argparse.Namespace) -> int:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UsageError("run needs a command: liteprof run -- CMD [ARGS...]")
    if args.export_format:
        check_export(args, flag="--export")
    elif (
        args.endpoint
        or args.name
        or any(v is not None for v in (args.since, args.until, args.min_dur))
    ):
        raise UsageError("--endpoint, --since, --until, --min-dur and --name go with --export")
    report_output = None if args.export_format else args.output  # -o: the export's
    check_output(args.format, report_output, args.html)
    temporary = args.log is None
    log_dir = args.log if args.log else tempfile.mkdtemp(prefix="liteprof-run-")
    env = dict(os.environ)
    env["LITEPROF_LOG"] = os.path.abspath(log_dir)
    env["LITEPROF_UNDER_RUN"] = "1"  # maybe_emit_report leaves the logs to this report
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
            paths = [log_dir] if not earlier else new
            report(paths, args.format, args.by, report_output, args.html)
            if args.export_format:
                try:
                    export(paths, args)
                except Exception as exc:  # the report stands; the status stays CMD's
                    sys.stderr.write(f"liteprof: cannot export {log_dir}: {one_line(exc)}\n")
        else:
            sys.stderr.write("liteprof: nothing was recorded (does the program import liteprof?)\n")
    except Exception as exc:  # the command's exit status matters more than the report
        sys.stderr.write(f"liteprof: cannot report {log_dir}: {one_line(exc)}\n")
    finally:
        if temporary and not args.keep:
            shutil.rmtree(log_dir, ignore_errors=True)
        elif temporary:
            sys.stderr.write(f"liteprof: log kept in {log_dir}\n")
    if code < 0:  # killed by a signal: report it the way a shell does
        return 128 - code
    return code
