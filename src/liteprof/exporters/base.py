"""The base classes of exporters and the event filters every format shares.

An exporter writes events to a binary stream in one tool's format. Most take one
``Events`` (parents linked, the whole run in memory); a ``StreamExporter`` takes the
events chunk by chunk (``feed``), so its memory does not grow with the number of
events: the command line then reads the logs with ``source.stream`` instead of
``read_logs``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

if TYPE_CHECKING:
    import numpy as np

    from ..log.events import Events


class Exporter:
    """Writes ``Events`` to a binary stream in one tool's format.

    ``extension`` is the usual file suffix; ``needs`` names the optional package the
    format needs (imported lazily), or is empty; ``timeline`` says the format places
    events in time, so it cannot take vLLM text logs (they have no start times).
    """

    extension: ClassVar[str] = ""
    needs: ClassVar[str] = ""
    timeline: ClassVar[bool] = True
    streams: ClassVar[bool] = False

    def write(self, events: Events, out: BinaryIO) -> None:
        raise NotImplementedError


class StreamExporter(Exporter):
    """An exporter that takes the events one chunk at a time.

    A chunk is an ``Events`` holding consecutive rows of one file (so a thread's events
    arrive in the order they closed, across chunks); its ``names``, ``processes`` and
    ``threads`` tables are shared by all chunks and only grow. ``parent`` is not linked
    in chunks (-1): a streaming format must not need it.
    """

    streams = True

    def begin(self, out: BinaryIO) -> None:
        raise NotImplementedError

    def feed(self, chunk: Events, keep: np.ndarray | None) -> None:
        """Write the chunk's events; ``keep`` (bool per row) selects those to export,
        ``None`` means all. Rows left out still count for the structure (nesting)."""
        raise NotImplementedError

    def end(self) -> None:
        raise NotImplementedError

    def write(self, events: Events, out: BinaryIO) -> None:
        self.begin(out)
        self.feed(events, None)
        self.end()


@dataclass
class Window:
    """Which events to export: ``liteprof export``'s filters.

    ``since``/``until`` are seconds from the first event; an event is kept when it
    overlaps that window (a long scope around it stays, so the nesting stays readable),
    lasts at least ``min_dur`` ns and its name matches the shell pattern ``name``.
    """

    since: float | None = None
    until: float | None = None
    min_dur: int | None = None
    name: str | None = None
    _matches: list[bool] = field(default_factory=list, repr=False, compare=False)
    _table: Any = field(default=None, repr=False, compare=False)

    @property
    def needs_first(self) -> bool:
        """The window is relative to the first event, which must be known first."""
        return self.since is not None or self.until is not None

    def mask(self, events: Events, first_ns: int | None) -> np.ndarray | None:
        """Bool per row of ``events``: the rows to export; ``None`` when all are."""
        import numpy as np

        keep: np.ndarray | None = None

        def both(m: np.ndarray) -> None:
            nonlocal keep
            keep = m if keep is None else keep & m

        if self.min_dur is not None:
            both(events.dur >= self.min_dur)
        if self.name is not None:
            # One match per name, kept across chunks (their name table only grows).
            pattern, known = self.name, self._matches
            if len(known) < len(events.names):
                known.extend(fnmatch.fnmatchcase(n, pattern) for n in events.names[len(known) :])
                self._table = np.array(known, dtype=np.bool_)
            table = self._table
            if table is None or table.size == 0:
                both(np.zeros(events.records, np.bool_))
            else:
                both(table[events.name])
        base = first_ns or 0
        if self.since is not None:
            lo = base + int(self.since * 1e9)
            both(events.start + events.dur >= lo)
        if self.until is not None:
            hi = base + int(self.until * 1e9)
            both(events.start <= hi)
        return keep
