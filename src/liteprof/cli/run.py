"""``liteprof run -- CMD``: run a command with recording on, then report the whole run.

Signals. The command runs in liteprof's process group, so a Ctrl-C (or a hang-up) that
the terminal sends reaches it directly, and it must start with the signal dispositions
liteprof itself was given (an ignored disposition survives ``exec``; a handled one does
not). While it runs, liteprof blocks SIGINT, SIGTERM, SIGHUP and SIGQUIT and waits for
them with ``sigtimedwait``: one that another process sent to liteprof alone (``kill``) is
forwarded to the command; one that the kernel sent to the whole foreground group (the
terminal's Ctrl-C) is not, since the command got it already and a second SIGINT would
break into its ``KeyboardInterrupt`` handling. Either way liteprof waits for the command,
prints the report of what it recorded and removes its temporary log folder: a signal
never leaves the command orphaned or the folder behind.

Start-up cost. This module is imported by every ``liteprof`` command, and ``run`` itself
sits between the user and the command, so it imports only what it uses (no
``subprocess``: ``os.posix_spawnp`` starts the command; no ``tempfile`` nor ``shutil``,
which import ``random``, ``weakref`` and three compression modules, for one folder of
flat files) and reads nothing when nothing was recorded.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable

from ..log.format import SUFFIX
from .common import UsageError, one_line
from .export import add_export_arguments, export
from .export import check as check_export
from .report import add_format_arguments, check_output, report

TYPE_CHECKING = False  # typing costs an import that every liteprof run would pay
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any

HELP = "run a command with recording on, then print the report"
DESCRIPTION = (
    "Run CMD with LITEPROF_LOG set (every Python process it starts that imports liteprof "
    "records), then print the report. Exit status: CMD's."
)

# Signals liteprof hands on to the command (the ones a user or a supervisor sends to stop
# it); the kernel's SIGCHLD says the command ended.
_FORWARD = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
    if hasattr(signal, name)
)
_SI_KERNEL = 0x80  # siginfo's si_code for a signal the kernel (the terminal) generated
_POLL_S = 0.5  # sigtimedwait's timeout: a lost SIGCHLD costs at most this long a wait


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


def _say(text: str) -> None:
    """A line on stderr that never raises: after a hang-up the terminal is gone (EIO), and
    the command's exit status and the clean-up matter more than the message."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class _Stopped(BaseException):
    """SIGTERM or SIGHUP while liteprof reports: stop, but still clean up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _exit_status(wait_status: int) -> int:
    """A ``waitpid`` status as a shell reports it: the exit code, or 128 + the signal."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    if os.WIFEXITED(wait_status):
        return os.WEXITSTATUS(wait_status)
    return 1  # pragma: no cover - stopped processes are not reported by a plain waitpid


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:  # it has just ended: nothing left to stop
        pass


def _reap(pid: int, block: bool) -> int | None:
    """The command's wait status once it has ended, else ``None`` (never raises EINTR)."""
    while True:
        try:
            done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for safety
            continue
        except ChildProcessError:  # pragma: no cover - reaped elsewhere: report success
            return 0
        return status if done == pid else None


def _run_blocked(cmd: list[str], env: dict[str, str]) -> int:
    """Start ``cmd`` and wait for it with the forwarded signals blocked; its exit status.

    The signals are blocked before the command starts, so none can slip in between, and
    ``posix_spawnp`` gives the command the signal mask liteprof had before (its
    dispositions follow ``exec``'s rule: ignored stays ignored, handled becomes default).
    """
    waited = set(_FORWARD) | {signal.SIGCHLD}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    try:
        try:
            pid = os.posix_spawnp(cmd[0], cmd, env, setsigmask=old_mask)
        except OSError as exc:
            raise UsageError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None
        while True:
            status = _reap(pid, block=False)
            if status is not None:
                break
            info = signal.sigtimedwait(waited, _POLL_S)
            if info is None or info.si_signo == signal.SIGCHLD:
                continue
            if info.si_code != _SI_KERNEL:  # kill() by a process: liteprof alone got it
                _forward(pid, info.si_signo)
        # Signals that came after the command ended would act the moment they are
        # unblocked (SIGTERM's default kills before the report): take them now.
        while signal.sigtimedwait(waited, 0) is not None:
            pass
        return _exit_status(status)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _run_handled(cmd: list[str], env: dict[str, str]) -> int:
    """Where ``sigtimedwait`` is missing (macOS): handlers that forward what a process
    sends to liteprof; the command's exit status. SIGINT is not forwarded there, since
    without ``siginfo`` a Ctrl-C that the command got already cannot be told apart; it
    only keeps liteprof waiting."""
    import subprocess

    pid_box: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        if pid_box and signum != signal.SIGINT:
            _forward(pid_box[0], signum)

    previous: dict[int, Any] = {}
    for signum in _FORWARD:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, forward)
    try:
        try:
            proc = subprocess.Popen(cmd, env=env)
        except OSError as exc:
            raise UsageError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None
        pid_box.append(proc.pid)
        code = proc.wait()
        return 128 - code if code < 0 else code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stopped(signum)


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
    if not temporary and os.path.exists(args.log) and not os.path.isdir(args.log):
        # Every process would fail to make its log there: nothing to report after the run.
        raise UsageError(f"--log {args.log}: not a directory")
    log_dir = _make_temporary_folder() if temporary else args.log
    env = dict(os.environ)
    env["LITEPROF_LOG"] = os.path.abspath(log_dir)
    env["LITEPROF_UNDER_RUN"] = "1"  # maybe_emit_report leaves the logs to this report
    earlier = set(_logs_in(log_dir))  # a reused --log DIR: report this run's logs only
    try:
        run: Callable[[list[str], dict[str, str]], int] = (
            _run_blocked if hasattr(signal, "sigtimedwait") else _run_handled
        )
        code = run(cmd, env)
        return _report_and_clean(args, log_dir, earlier, temporary, code, report_output)
    finally:
        if temporary and not args.keep:
            _remove(log_dir)


def _report_and_clean(
    args: argparse.Namespace,
    log_dir: str,
    earlier: set[str],
    temporary: bool,
    code: int,
    report_output: str | None,
) -> int:
    """Report this run's logs; SIGTERM or SIGHUP meanwhile stops the report (the caller
    still removes the folder) and the exit status stays the command's."""
    previous: dict[int, Any] = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, _stop)
    try:
        new = [f for f in _logs_in(log_dir) if f not in earlier]
        if new:
            paths = [log_dir] if not earlier else new
            report(paths, args.format, args.by, report_output, args.html)
            if args.export_format:
                try:
                    export(paths, args)
                except Exception as exc:  # the report stands; the status stays CMD's
                    _say(f"liteprof: cannot export {log_dir}: {one_line(exc)}\n")
        else:
            _say("liteprof: nothing was recorded (does the program import liteprof?)\n")
        if temporary and args.keep:
            _say(f"liteprof: log kept in {log_dir}\n")
    except _Stopped:
        pass
    except KeyboardInterrupt:
        _say("liteprof: report interrupted\n")
    except Exception as exc:  # the command's exit status matters more than the report
        _say(f"liteprof: cannot report {log_dir}: {one_line(exc)}\n")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


def _make_temporary_folder() -> str:
    """A new private folder ``liteprof-run-XXXX`` where ``tempfile`` would make one (the
    first of ``TMPDIR``, ``TEMP``, ``TMP``, the system's folders that takes it), like
    ``tempfile.mkdtemp``: mode 0700, a name that cannot be guessed, never one that exists."""
    bases = [os.environ.get(v) for v in ("TMPDIR", "TEMP", "TMP")]
    for base in [b for b in bases if b] + ["/tmp", "/var/tmp", "/usr/tmp"]:
        for _attempt in range(10):
            path = os.path.join(base, "liteprof-run-" + os.urandom(8).hex())
            try:
                os.mkdir(path, 0o700)
                return os.path.abspath(path)
            except FileExistsError:
                continue
            except OSError:  # missing, not a folder, not writable: the next candidate
                break
    import tempfile  # nothing usable above: tempfile's search (cwd too) and its error

    return tempfile.mkdtemp(prefix="liteprof-run-")


def _remove(directory: str) -> None:
    """Remove the temporary folder: its log files, then itself (anything else in it, say
    a folder the program made there, goes with ``shutil.rmtree``)."""
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    raise IsADirectoryError(entry.path)
                os.unlink(entry.path)
        os.rmdir(directory)
    except FileNotFoundError:
        pass
    except OSError:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
