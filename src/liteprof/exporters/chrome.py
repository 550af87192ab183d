"""Chrome's trace-event JSON (chrome://tracing, ui.perfetto.dev, and many other tools).

One ``X`` (complete) event per scope with ``ts`` and ``dur`` in microseconds, written
with three decimals so no nanosecond is lost; ``M`` (metadata) events name each process
(and give its rank and host as labels) and each thread. An asyncio task's events get a
thread of their own ("MainThread task 3"), since ``X`` events of one thread must nest.

Times count from ``origin_ns`` (``otherData.liteprof_origin_wall_ns``, wall-clock ns):
a JSON number is a double, which holds a wall clock in µs only to a quarter of a
microsecond. Streamed: events are written a chunk at a time.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO

import numpy as np

from ..log.events import Events
from .base import StreamExporter
from .source import Pids

_TASK_TID_BASE = 1 << 31  # synthetic thread ids for asyncio tasks' own rows


def _micros(ns: int) -> str:
    q, r = divmod(abs(ns), 1000)
    return f"{'-' if ns < 0 else ''}{q}.{r:03d}"


class ChromeExporter(StreamExporter):
    """Writes Chrome trace-event JSON (``.json``)."""

    extension = ".json"

    def __init__(self) -> None:
        self.origin_ns: int | None = None

    def begin(self, out: BinaryIO) -> None:
        self.out = out
        self.pids = Pids()
        self.started = False
        self.named_procs: set[int] = set()
        self.tids: dict[tuple[int, int], int] = {}
        self.events = 0
        self.first = True
        self.heads: list[str] = []

    def _head(self, origin: int) -> None:
        self.origin_ns = origin
        other = {"liteprof_origin_wall_ns": origin, "time_unit": "us from the origin"}
        self.out.write(
            b'{"displayTimeUnit":"ns","otherData":'
            + json.dumps(other).encode()
            + b',"traceEvents":[\n'
        )
        self.started = True

    def _emit(self, items: list[str]) -> None:
        if not items:
            return
        text = ",\n".join(items)
        if not self.first:
            text = ",\n" + text
        self.first = False
        self.out.write(text.encode("utf-8"))

    def _tid(self, events: Events, thread: int, lane: int, meta: list[str]) -> int:
        key = (thread, lane)
        found = self.tids.get(key)
        if found is not None:
            return found
        info = events.threads[thread]
        proc = int(info["proc"])
        pid = self.pids(events.processes, proc)
        if proc not in self.named_procs:
            self.named_procs.add(proc)
            p = events.processes[proc]
            meta.append(_meta("process_name", pid, 0, {"name": str(p.get("name", "?"))}))
            labels = f"host={p.get('host', '?')}"
            if p.get("rank") is not None:
                labels = f"rank={p['rank']},{labels}"
            meta.append(_meta("process_labels", pid, 0, {"labels": labels}))
        name = str(info.get("name", "?"))
        if lane == 0:
            tid = self.pids.tid(events.processes, proc, int(info.get("tid") or 0))
        else:
            tid = _TASK_TID_BASE + len(self.tids)
            name = f"{name} task {lane}"
        self.tids[key] = tid
        meta.append(_meta("thread_name", pid, tid, {"name": name}))
        return tid

    def feed(self, chunk: Events, keep: np.ndarray | None) -> None:
        if chunk.records == 0:
            return
        if not self.started:
            self._head(self.origin_ns if self.origin_ns is not None else int(chunk.start.min()))
        origin = self.origin_ns or 0
        rows = np.flatnonzero(keep) if keep is not None else np.arange(chunk.records)
        if rows.size == 0:
            return
        self.events += int(rows.size)
        meta: list[str] = []
        pid_of: dict[int, int] = {}
        tid_of: dict[tuple[int, int], int] = {}
        thread = chunk.thread[rows].tolist()
        lane = chunk.lane[rows].tolist()
        for key in set(zip(thread, lane)):
            tid_of[key] = self._tid(chunk, key[0], key[1], meta)
            proc = int(chunk.threads[key[0]]["proc"])
            pid_of[key[0]] = self.pids(chunk.processes, proc)
        self._emit(meta)
        # One JSON prefix per name (with its group as the category), made once.
        head = self.heads
        for n in chunk.names[len(head) :]:
            group = n.partition(":")[0] if ":" in n else ""
            head.append(f'{{"ph":"X","name":{json.dumps(n)},"cat":{json.dumps(group)},')
        rel = (chunk.start[rows] - origin).tolist()
        dur = chunk.dur[rows].tolist()
        names = chunk.name[rows].tolist()
        errors = chunk.error[rows].tolist()
        items = [
            f'{head[nm]}"ts":{_micros(s)},"dur":{_micros(d)},"pid":{pid_of[th]},'
            f'"tid":{tid_of[(th, ln)]}' + (',"args":{"error":true}}' if er else "}")
            for nm, s, d, th, ln, er in zip(names, rel, dur, thread, lane, errors)
        ]
        self._emit(items)

    def end(self) -> None:
        if not self.started:
            self._head(self.origin_ns or 0)
        self.out.write(b"\n]}\n")
        self.out.flush()

    def summary(self) -> dict[str, Any]:
        return {"events": self.events}


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> str:
    return json.dumps({"ph": "M", "name": name, "pid": pid, "tid": tid, "args": args})
