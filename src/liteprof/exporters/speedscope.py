"""speedscope's file format (https://www.speedscope.app), evented profiles.

One evented profile per thread, and one per asyncio task of a thread (a task's scopes
overlap the thread's other tasks, and an evented profile is one stack); unit
nanoseconds, values counted from the first event (a JSON number is a double, exact to
the nanosecond only below 2**53). Frames are the scope names, shared by all profiles.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO

import numpy as np

from .._version import __version__
from ..log.events import Events
from . import _tree
from .base import Exporter
from .source import Pids

SCHEMA = "https://www.speedscope.app/file-format-schema.json"


class SpeedscopeExporter(Exporter):
    """Writes a speedscope JSON file (``.speedscope.json``)."""

    extension = ".speedscope.json"

    def write(self, events: Events, out: BinaryIO) -> None:
        origin = int(events.start.min()) if events.records else 0
        rows, is_begin, ts = _tree.time_order(events)
        keys = _tree.stream_keys(events)[rows]
        cut = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if rows.size else rows
        bounds = np.r_[cut, rows.size].astype(np.int64)
        frames = ",".join(json.dumps({"name": n}) for n in events.names)
        name = events.sources[0] if len(events.sources) == 1 else f"{len(events.sources)} logs"
        out.write(
            (
                f'{{"$schema":{json.dumps(SCHEMA)},"exporter":"liteprof {__version__}",'
                f'"name":{json.dumps(name)},"activeProfileIndex":0,'
                f'"shared":{{"frames":[{frames}]}},"profiles":['
            ).encode()
        )
        pids = Pids()
        self.profiles = 0
        rel = (ts - origin).tolist()
        kinds = np.where(is_begin, ord("O"), ord("C")).tolist()
        frame = events.name[rows].tolist()
        for i in range(bounds.size - 1):
            a, b = int(bounds[i]), int(bounds[i + 1])
            row = int(rows[a])
            thread, lane = int(events.thread[row]), int(events.lane[row])
            info = events.threads[thread]
            proc = int(info["proc"])
            pid = pids(events.processes, proc)
            title = f"{events.processes[proc].get('name', '?')} (pid {pid}) {info.get('name', '?')}"
            if lane:
                title += f" task {lane}"
            body = ",".join(
                f'{{"type":"{chr(k)}","frame":{f},"at":{t}}}'
                for k, f, t in zip(kinds[a:b], frame[a:b], rel[a:b])
            )
            out.write(
                (
                    ("," if self.profiles else "")
                    + f'{{"type":"evented","name":{json.dumps(title)},"unit":"nanoseconds",'
                    f'"startValue":{rel[a]},"endValue":{rel[b - 1]},"events":[{body}]}}'
                ).encode("utf-8")
            )
            self.profiles += 1
        out.write(b"]}\n")

    def summary(self) -> dict[str, Any]:
        return {"profiles": self.profiles}
