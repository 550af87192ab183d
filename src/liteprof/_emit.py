"""``maybe_emit_report``: where the recording side hands its log to the reader.

The top of the house: it reads (``log``), analyses (``analysis``) and renders
(``renderers``), all imported only when a report is emitted, so ``import liteprof``
stays free of numpy.
"""

from __future__ import annotations

import os

from .record import session
from .record.api import enabled
from .record.session import logger


def maybe_emit_report(*, keep_log: bool = False) -> None:
    """If this process records: flush, log the summary through logger ``liteprof`` at
    INFO, then delete this process's log unless ``keep_log``. Otherwise do nothing.
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
            logger.info("liteprof: no events were recorded in process %d", os.getpid())
            return
        from .analysis.report import build_report
        from .log.reader import read_logs
        from .renderers import render

        report = build_report(read_logs([path]))
        logger.info("%s", render(report, "plain"))
        if not keep_log:
            try:
                os.unlink(path)
            except OSError:
                pass
            try:
                os.rmdir(os.path.dirname(path))  # only succeeds when nothing else is left
            except OSError:
                pass
    except Exception as exc:
        logger.warning("liteprof: could not emit the report: %s", exc)
