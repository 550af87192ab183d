"""Helpers for the export tests: synthetic logs, and a Perfetto trace read back.

``write_log`` writes a log file with liteprof's own writer, event slots and lane slots
placed by hand, so a test controls every time, depth and lane (asyncio tasks that
overlap on one thread, scopes open across the reader's chunks).

``perfetto_slices`` parses a trace with the ``perfetto`` package's protos
(``perfetto_trace_pb2``) and rebuilds its slices the way trace processor does: per packet
sequence, the incremental state (interned names, defaults, the incremental clock of a
``ClockSnapshot``), then every track event of the trace sorted by time (stable, in file
order for equal times) and matched begin-to-end on a stack per track.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from liteprof.log import format as F
from liteprof.log.writer import LogWriter


@dataclass
class Ev:
    """One event for ``write_log``: monotonic start, duration, depth, lane, error."""

    name: str
    start: int
    dur: int
    depth: int = 0
    lane: int = 0
    error: bool = False
    child: int = 0


def write_log(directory: str, threads: dict[str, list[Ev]], *, block_slots: int = 0) -> str:
    """A log in ``directory`` with, per thread name, its events in closing order.

    A lane slot is written wherever an event's lane differs from the one in force;
    ``block_slots`` > 0 starts a new block after that many slots (tests of chunks).
    """
    writer = LogWriter(directory, backend="python")
    try:
        for tid, (tname, events) in enumerate(threads.items(), start=1000):
            owner = writer.thread_index(tid, tname)
            size = F.MAX_BLOCK if not block_slots else (block_slots + 1) * F.SLOT_SIZE
            size = max(F.MIN_BLOCK, -(-size // F.MIN_BLOCK) * F.MIN_BLOCK)
            capacity = size // F.SLOT_SIZE - 1
            if block_slots:
                capacity = min(capacity, block_slots)
            block = writer.new_block(owner, size)
            pos, used, lane = F.SLOT_SIZE, 0, 0
            for ev in events:
                need = 2 if ev.lane != lane else 1
                if used + need > capacity:
                    writer.release(block)
                    block = writer.new_block(owner, size)
                    pos, used, lane = F.SLOT_SIZE, 0, 0
                    need = 2 if ev.lane != lane else 1
                if ev.lane != lane:
                    F.LANE_STRUCT.pack_into(block, pos, ev.lane, F.KIND_LANE)
                    pos, used, lane = pos + F.SLOT_SIZE, used + 1, ev.lane
                flags = F.KIND_EVENT | (F.FLAG_ERROR if ev.error else 0)
                flags |= ev.depth << F.DEPTH_SHIFT
                name_id = writer.name_id(ev.name)
                F.EVENT_STRUCT.pack_into(block, pos, ev.start, ev.dur, ev.child, name_id, flags)
                pos, used = pos + F.SLOT_SIZE, used + 1
            writer.release(block)
    finally:
        writer.close()
    return writer.path


# -- Perfetto, read back -------------------------------------------------------------


@dataclass
class Slice:
    track: int
    name: str
    ts: int
    dur: int
    depth: int
    category: str | None


@dataclass
class Trace:
    slices: list[Slice]
    tracks: dict[int, Any]
    """uuid -> TrackDescriptor"""
    packets: int
    unmatched_ends: int = 0
    open_at_end: int = 0
    packet_sizes: list[int] = field(default_factory=list)

    def track_name(self, uuid: int) -> str:
        desc = self.tracks[uuid]
        if desc.HasField("thread"):
            return str(desc.thread.thread_name)
        return str(desc.name)


def perfetto_slices(path: str) -> Trace:
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

    trace = pb.Trace()
    with open(path, "rb") as fh:
        trace.ParseFromString(fh.read())
    cleared = pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED
    seqs: dict[int, dict[str, Any]] = {}
    tracks: dict[int, Any] = {}
    events: list[tuple[int, int, int, int, str | None, str | None]] = []
    primary = 6  # BOOTTIME unless a snapshot says otherwise
    for index, packet in enumerate(trace.packet):
        seq_id = packet.trusted_packet_sequence_id
        state = seqs.setdefault(seq_id, {"names": {}, "cats": {}, "clocks": {}, "defaults": None})
        if packet.sequence_flags & cleared:
            state.update(names={}, cats={}, defaults=None)
        if packet.HasField("trace_packet_defaults"):
            state["defaults"] = packet.trace_packet_defaults
        if packet.HasField("interned_data"):
            for item in packet.interned_data.event_names:
                state["names"][item.iid] = item.name
            for item in packet.interned_data.event_categories:
                state["cats"][item.iid] = item.name
        if packet.HasField("clock_snapshot"):
            snap = packet.clock_snapshot
            if snap.HasField("primary_trace_clock"):
                primary = snap.primary_trace_clock
            values = {c.clock_id: c for c in snap.clocks}
            for clock in snap.clocks:
                if clock.clock_id >= 64:
                    # Sequence clock: its value maps onto the snapshot's builtin clock.
                    ref = values.get(primary)
                    assert ref is not None, "incremental clock without the trace clock"
                    state["clocks"][clock.clock_id] = {
                        "last": clock.timestamp,
                        "offset": ref.timestamp - clock.timestamp,
                        "incremental": clock.is_incremental,
                    }
        if packet.HasField("track_descriptor"):
            tracks[packet.track_descriptor.uuid] = packet.track_descriptor
        if not packet.HasField("track_event"):
            continue
        te = packet.track_event
        defaults = state["defaults"]
        clock_id = packet.timestamp_clock_id
        if not packet.HasField("timestamp_clock_id") and defaults is not None:
            clock_id = defaults.timestamp_clock_id
        ts = packet.timestamp
        if clock_id >= 64:
            clock = state["clocks"][clock_id]
            if clock["incremental"]:
                clock["last"] += ts
                ts = clock["last"]
            ts += clock["offset"]
        else:
            assert clock_id in (0, primary), f"clock {clock_id} is not the trace clock"
        track = te.track_uuid
        if not te.HasField("track_uuid") and defaults is not None:
            track = defaults.track_event_defaults.track_uuid
        name = te.name if te.HasField("name") else state["names"].get(te.name_iid)
        if te.HasField("name_iid"):
            assert te.name_iid in state["names"], "name used before it was interned"
        cats = list(te.categories) + [state["cats"][i] for i in te.category_iids]
        events.append((ts, index, track, te.type, name, ",".join(cats) or None))
    events.sort(key=lambda e: (e[0], e[1]))
    stacks: dict[int, list[tuple[int, str | None, str | None]]] = {}
    slices: list[Slice] = []
    unmatched = 0
    for ts, _index, track, kind, name, cat in events:
        stack = stacks.setdefault(track, [])
        if kind == pb.TrackEvent.TYPE_SLICE_BEGIN:
            stack.append((ts, name, cat))
        elif kind == pb.TrackEvent.TYPE_SLICE_END:
            if not stack or (name is not None and stack[-1][1] != name):
                unmatched += 1
                continue
            begin, bname, bcat = stack.pop()
            slices.append(Slice(track, str(bname), begin, ts - begin, len(stack), bcat))
    open_left = sum(len(s) for s in stacks.values())
    sizes = [p.ByteSize() for p in trace.packet]
    return Trace(slices, tracks, len(trace.packet), unmatched, open_left, sizes)


def file_size(path: str) -> int:
    return os.path.getsize(path)
