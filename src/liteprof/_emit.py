"""``maybe_emit_report``: where the recording side hands its log to the reader.

The top of the house: it reads (``log``), analyses (``analysis``) and renders
(``renderers``), all imported only when a report is emitted, so ``import liteprof``
stays free of numpy (and of ``logging``). ``show`` is the one way a report reaches the
user: through a logger where a handler would show it, else on stderr.
"""

from __future__ import annotations

import os
import sys

from .record import session
from .record.api import enabled

INFO = 20  # logging.INFO, without importing logging to know it


def would_show(logger: object, level: int = INFO, text: str = "") -> bool:
    """Whether a record of ``level`` (message ``text``) on ``logger`` reaches a handler
    that lets it through.

    Walks the logger and its parents as ``Logger.callHandlers`` does (stopping where
    ``propagate`` is off), honouring the loggers' and handlers' levels and filters (the
    logger's own filters, as ``Logger.handle`` applies them); with no handler on the way,
    ``logging.lastResort`` decides (it shows warnings only, by default).
    """
    import logging

    assert isinstance(logger, logging.Logger)
    if logger.disabled or not logger.isEnabledFor(level):
        return False
    record = logger.makeRecord(logger.name, level, __file__, 0, "%s", (text,), None)
    if not logger.filter(record):
        return False
    found = False
    node: logging.Logger | None = logger
    while node is not None:
        for handler in node.handlers:
            found = True
            if level >= handler.level and handler.filter(record):
                return True
        if not node.propagate:
            break
        node = node.parent
    if found:
        return False
    last = logging.lastResort
    return last is not None and level >= last.level


def show(text: str, logger_name: str = session.LOGGER_NAME) -> None:
    """Log ``text`` at INFO on ``logger_name`` if a handler would show it; else write it
    to stderr, so that the user always sees it."""
    import logging

    logger = logging.getLogger(logger_name)
    if would_show(logger, INFO, text):
        logger.info("%s", text)
        return
    stream = sys.stderr
    if stream is None:  # pythonw, a daemon with its streams closed: nowhere to write
        return
    stream.write(text + "\n")
    stream.flush()


def maybe_emit_report(*, keep_log: bool = False) -> None:
    """If this process records: flush, show the summary (logger ``liteprof`` at INFO
    where a handler would show it, else stderr), then delete this process's log unless
    ``keep_log`` or the process runs under ``liteprof run``. Otherwise do nothing.
    Recording stops in this process. Never raises.
    """
    try:
        with session.state_lock:
            current = session.current
            if current is None or not enabled():
                return
            path = current.writer.path if current.writer is not None else None
            session.stop_locked()
        if path is None:
            show(f"liteprof: no events were recorded in process {os.getpid()}")
            return
        from .analysis.report import build_report
        from .log.reader import read_logs
        from .renderers import render

        report = build_report(read_logs([path]))
        show(render(report, "plain"))
        if not keep_log and not session.under_liteprof_run():
            try:
                os.unlink(path)
            except OSError:
                pass
            try:
                os.rmdir(os.path.dirname(path))  # only succeeds when nothing else is left
            except OSError:
                pass
    except Exception as exc:
        try:
            session.warn("liteprof: could not emit the report: %s: %s", type(exc).__name__, exc)
        except Exception:
            pass
