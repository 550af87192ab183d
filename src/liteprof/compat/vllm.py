"""vLLM's lite profiler, replaced: the same names, environment variable and report.

Switch by changing one import::

    from liteprof.compat.vllm import LiteProfilerScope, maybe_emit_lite_profiler_report

What a vLLM user keeps:

- ``VLLM_LITE_PROFILER_LOG_PATH`` set (before the program starts, or by the program after
  importing this module, as vLLM reads it lazily): every process started while it is set
  records, each into its own file under that path. liteprof writes one file per process,
  so the path is a directory; a path that is a file or names one (``vllm_lite.log``)
  becomes the directory ``<path>.liteprof`` beside it.
- Which processes record: as vLLM, not the duplicate ranks (``EngineCore_DP<N>`` and
  ``VllmWorker-<N>`` with N > 0), so the figures are vLLM's; every other process records,
  also an engine that runs inside the main process (vLLM's module records nothing
  there). ``LITEPROF_PROCESSES`` overrides it (``*``: every process).
- ``maybe_emit_lite_profiler_report()``, called in any process (vLLM's benchmarks call it
  in the main process, which records nothing itself): the summary of every process's log
  of this run under the path: vLLM's two breakdown tables, cell for cell, then liteprof's
  report. It goes to logger ``vllm.lite_profiler`` where a handler would show it (vLLM
  configures its ``vllm`` logger), else to stderr. Then the logs are removed, except
  under ``liteprof run``, which reports them itself. It never raises.

Under ``liteprof run`` (or with ``LITEPROF_LOG`` set) the processes record into
``LITEPROF_LOG`` instead, and the report summarizes that directory.
"""

from __future__ import annotations

import os
import time

from .. import _emit
from ..record import api as _api
from ..record import session as _session
from ..record.api import Scope, scope

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..log.events import Events

LiteProfilerScope = scope
LiteScope = scope

__all__ = [
    "LiteProfilerScope",
    "LiteScope",
    "Scope",
    "log_directory",
    "maybe_emit_lite_profiler_report",
    "records_by_default",
]

ENV_VAR = "VLLM_LITE_PROFILER_LOG_PATH"
LOGGER_NAME = "vllm.lite_profiler"

# The events of vLLM's two breakdown tables, in vLLM's order: each table's percentages
# are of its own total over exactly these names.
TOP_EVENTS = ("Step:Schedule", "Step:Model", "Step:Output")
MODEL_EVENTS = (
    "Model:UpdateState",
    "Model:PrepareInput",
    "Model:Forward",
    "Model:Postprocess",
    "Model:Bookkeep",
)
TABLES = (
    ("Top-level pipeline events", TOP_EVENTS),
    ("Model events breakdown (only includes the main key events)", MODEL_EVENTS),
)

_RANKED = ("EngineCore_DP", "VllmWorker-")


def records_by_default(process_name: str) -> bool:
    """vLLM's rule: the rank-0 engine core and worker record, their duplicates do not
    (``EngineCore_DP<N>``, ``VllmWorker-<N>`` with N > 0); any other process records."""
    for prefix in _RANKED:
        if process_name.startswith(prefix):
            rank = process_name[len(prefix) :]
            if rank.isascii() and rank.isdigit():
                return int(rank) == 0
    return True


def log_directory(path: str) -> str:
    """The directory liteprof records into for ``VLLM_LITE_PROFILER_LOG_PATH=path``.

    ``path`` itself, unless it is a file or names one (its last component has an
    extension, as vLLM's ``vllm_lite.log``): then ``<path>.liteprof``, beside it. Every
    process decides alike, so they all write into the same directory.
    """
    if os.path.isdir(path) or _names_a_directory(path):
        return path
    if os.path.lexists(path) or os.path.splitext(os.path.basename(path))[1]:
        return path + ".liteprof"
    return path


def _names_a_directory(path: str) -> bool:
    return path.endswith(("/", os.sep))


def _directory_of(path: str) -> str:
    """The absolute directory for the variable's value (decided before ``abspath``, which
    drops a final separator)."""
    return os.path.abspath(log_directory(path))


def _enable_from_environment() -> None:
    """Record into the path of ``VLLM_LITE_PROFILER_LOG_PATH``, unless this process
    records already (``LITEPROF_LOG``, ``liteprof run``, ``enable()``)."""
    path = os.environ.get(ENV_VAR)
    if not path or _session.session_of_this_process() is not None:
        return
    directory = _directory_of(path)
    # Children inherit the variable but may run in another directory: pin it (keeping a
    # final separator, which says the path is a directory).
    os.environ[ENV_VAR] = os.path.abspath(path) + (os.sep if _names_a_directory(path) else "")
    _api.enable(directory)


def _after_fork_in_child() -> None:
    # The variable may have been set after this module was imported (vLLM reads it
    # lazily): a forked engine or worker records as a spawned one does.
    try:
        _enable_from_environment()
    except Exception:  # never break the fork
        pass


# -- the report -----------------------------------------------------------------------------


def _report_directory() -> str | None:
    """Where this run's processes record: this process's directory, else the one the
    environment names (``LITEPROF_LOG`` first, as ``import liteprof`` decides)."""
    own = _session.session_of_this_process()
    if own is not None:
        return own.directory
    env = os.environ.get("LITEPROF_LOG")
    if env:
        return os.path.abspath(env)
    path = os.environ.get(ENV_VAR)
    if path:
        return _directory_of(path)
    return None


def _process_start_ns() -> int | None:
    """When this process started, on the clock of the logs' ``mono_ns`` (Linux)."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
        # Field 22, starttime, in clock ticks since boot; fields are counted after the
        # command name, which may itself contain spaces and parentheses.
        ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
        since_boot = ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        boot_now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        return time.perf_counter_ns() - (boot_now - since_boot)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def run_start_ns() -> int:
    """The start of this run: this process's start (or, where that is unknown, when
    liteprof was imported here); a log written by a process that started before is of
    an earlier run."""
    started = _process_start_ns()
    imported = _session.IMPORTED_NS
    return imported if started is None else min(started, imported)


def this_runs_logs(directory: str) -> tuple[list[str], list[str], list[str]]:
    """The log files under ``directory``: those written in this run, those of this run
    without a readable header (a process killed as it created its file), and those of
    earlier runs, left out so that they do not pile up into this run's report."""
    from _socket import gethostname

    from ..log import format as F
    from ..log.errors import LogError
    from ..log.scan import read_header

    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(F.SUFFIX))
    except FileNotFoundError:
        return [], [], []
    start = run_start_ns()
    start_wall = time.time_ns() - (time.perf_counter_ns() - start)
    host = gethostname()
    ours: list[str] = []
    headless: list[str] = []
    earlier: list[str] = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as fh:
                meta = read_header(fh, path).meta
        except (OSError, LogError):
            try:  # no header to date it: the file's own time says which run it is of
                old = os.stat(path).st_mtime_ns < start_wall
            except OSError:
                continue
            (earlier if old else headless).append(path)
            continue
        created = meta.get("mono_ns")
        if (
            meta.get("pid") != os.getpid()
            and meta.get("host") == host  # another host's clock says nothing here
            and isinstance(created, int)
            and created < start
        ):
            earlier.append(path)
        else:
            ours.append(path)
    return ours, headless, earlier


def breakdown_sums(events: Events) -> dict[str, int]:
    """Total ns of each event of vLLM's tables over the events vLLM records: vLLM's
    module writes nothing for a scope left by an exception, so neither do these."""
    index = {name: i for i, name in enumerate(events.names)}
    ok = ~events.error
    sums: dict[str, int] = {}
    for name in TOP_EVENTS + MODEL_EVENTS:
        i = index.get(name)
        sums[name] = 0 if i is None else int(events.dur[(events.name == i) & ok].sum())
    return sums


def _cell(ns: int, total: int) -> str:
    percent = ns * 100.0 / total if total else 0.0
    return f"{ns / 1e9:.3f}s ({percent:.2f}%)"


def breakdown_tables(sums: dict[str, int]) -> list[str]:
    """vLLM's two tables, cell for cell: ``0.985s (79.21%)`` is the event's seconds and
    its share of the table's total; the last column is that total."""
    lines: list[str] = []
    for title, events in TABLES:
        total = sum(sums.get(e, 0) for e in events)
        headers = [*events, "TOTAL"]
        cells = [_cell(sums.get(e, 0), total) for e in events] + [f"{total / 1e9:.3f}s"]
        widths = [max(len(h), len(c)) for h, c in zip(headers, cells)]

        def row(values: list[str], widths: list[int] = widths) -> str:
            return " | ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

        lines += [
            "",
            title,
            "-" * (sum(widths) + 3 * (len(widths) - 1)),
            row(headers),
            " | ".join("-" * w for w in widths),
            row(cells),
        ]
    return lines


def summary(events: Events, directory: str, *, headless: int = 0, earlier: int = 0) -> str:
    """The whole text of the report: who recorded, vLLM's tables, liteprof's report."""
    from ..analysis.report import build_report
    from ..renderers import render

    procs = ", ".join(f"{p['name']} (pid {p['pid']})" for p in events.processes)
    lines = [f"Lite profiler summary ({directory}): {len(events.processes)} processes: {procs}"]
    if headless:
        lines.append(f"({headless} log file(s) without a readable header are skipped)")
    if earlier:
        lines.append(
            f"({earlier} log file(s) of earlier runs under this path are left out, and left "
            "in place)"
        )
    lines += breakdown_tables(breakdown_sums(events))
    errors = int(events.error.sum())
    if errors:
        lines.append(
            f"({errors} scope(s) left by an exception are not in these two tables, as in "
            "vLLM; the report below counts them)"
        )
    lines += ["", render(build_report(events), "plain")]
    return "\n".join(lines)


def _report() -> None:
    directory = _report_directory()
    if directory is None:
        return  # not profiling (vLLM's does nothing either)
    with _session.state_lock:
        own = _session.session_of_this_process()
        restart: list[str] | None = None
        if own is not None and own.directory == directory:
            # This process's own log is part of the report: close it first.
            restart = own.patterns
            _session.stop_locked()
    try:
        files, headless, earlier = this_runs_logs(directory)
        if not files:
            _emit.show(
                f"Lite profiler: no process of this run recorded under {directory} (does "
                f"the profiled code use liteprof.compat.vllm scopes?)",
                LOGGER_NAME,
            )
            return
        from ..log.reader import read_logs

        text = summary(read_logs(files), directory, headless=len(headless), earlier=len(earlier))
        _emit.show(text, LOGGER_NAME)
        if not _session.under_liteprof_run():
            for path in files + headless:
                try:
                    os.unlink(path)
                except OSError:
                    pass
            try:
                os.rmdir(directory)  # only succeeds when nothing else is left
            except OSError:
                pass
    finally:
        if restart is not None:
            # As vLLM's, recording goes on after a report, into a new file.
            _api.enable(directory, processes=restart)


def maybe_emit_lite_profiler_report() -> None:
    """Show the summary of this run's logs under ``VLLM_LITE_PROFILER_LOG_PATH`` (every
    process's), then remove them (not under ``liteprof run``). Does nothing when the
    variable is not set and nothing records; never raises."""
    try:
        _report()
    except Exception as exc:
        try:
            import logging

            logging.getLogger(LOGGER_NAME).warning(
                "liteprof: could not summarize the lite profiler logs: %s: %s",
                type(exc).__name__,
                exc,
            )
        except Exception:
            pass


_session.default_selector = records_by_default
_enable_from_environment()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
