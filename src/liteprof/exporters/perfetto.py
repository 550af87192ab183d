"""Perfetto's protobuf trace (TrackEvent), written by liteprof's own encoder.

What the trace holds:

- a process track per process (name, pid; rank and host as process labels), a thread
  track per thread (name, tid), and a track per asyncio task (or greenlet) of a thread,
  beside it in its process, so a task's slices never overlap another's;
- a slice per event: a ``SLICE_BEGIN`` and a ``SLICE_END`` packet on its track's own
  packet sequence, names interned per sequence, events left by an exception in
  category ``error``;
- wall-clock timestamps: the trace clock is ``REALTIME``, so files from several hosts
  line up; each sequence counts time in deltas from its previous packet (a clock marked
  incremental), which keeps an event to about 28 bytes.

How it is written: chunk by chunk (``StreamExporter``), so memory does not depend on
the number of events. Within a chunk the begins and ends of each track are put in time
order with one stable sort, and every packet of the chunk gets the same layout: the
varints (sequence id, name id, time delta) take the width of the chunk's largest
value, shorter ones written overlong, so a chunk is one byte matrix filled a column at a
time with numpy and written as it is. A scope that was open across chunks (a ``main()``
around the whole run) only closes in a later chunk, after its children were written: its
begin is written then, with an absolute timestamp; viewers order packets by time.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import numpy as np

from ..log.events import Events
from . import _proto as P
from . import _tree
from .base import StreamExporter
from .source import Pids

# Field numbers (protos/perfetto/trace/...).
_TRACE_PACKET = 1  # Trace.packet
_TS, _CLOCK_ID, _SEQ_ID, _TRACK_EVENT = 8, 58, 10, 11
_INTERNED, _SEQ_FLAGS, _DEFAULTS, _SNAPSHOT, _DESCRIPTOR = 12, 13, 59, 6, 60
_FIRST_ON_SEQ = 87
_TE_TYPE, _TE_NAME_IID, _TE_NAME, _TE_CATEGORY_IIDS, _TE_CATEGORIES = 9, 10, 23, 3, 22
_BEGIN, _END = 1, 2
_REALTIME, _INCREMENTAL = 1, 64  # builtin clock, and a sequence-scoped clock id
_INCREMENTAL_STATE_CLEARED = 1
_ERROR_CATEGORY_IID = 1

_GLOBAL_SEQ = 1
_PROCESS_UUID_BASE = 1 << 40
_INT64_MAX = np.iinfo(np.int64).max
_MAX_DELTA = (1 << 56) - 1  # fits an 8-byte varint; a longer silence is clamped


def _segmented_running_max(ts: np.ndarray, seg: np.ndarray) -> None:
    """In place: each value the maximum of its segment's values so far (segments are
    contiguous and in ascending order)."""
    if ts.size == 0:
        return
    low = int(ts.min())
    rel = ts - low
    span = int(rel.max()) + 1
    if span * (int(seg.max()) + 1) < (1 << 62):
        shifted = rel + seg * span
        np.maximum.accumulate(shifted, out=shifted)
        np.subtract(shifted, seg * span - low, out=ts)
        return
    cut = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1], True])
    for a, b in zip(cut[:-1].tolist(), cut[1:].tolist()):
        np.maximum.accumulate(ts[a:b], out=ts[a:b])


def _packet(*fields: bytes) -> bytes:
    return P.field_bytes(_TRACE_PACKET, b"".join(fields))


class PerfettoExporter(StreamExporter):
    """Writes a Perfetto trace (``.pftrace``) for ui.perfetto.dev and trace processor."""

    extension = ".pftrace"

    def begin(self, out: BinaryIO) -> None:
        self.out = out
        self.tracks: dict[tuple[int, int], int] = {}
        self.last_ts: list[int] = []  # per track: the last timestamp written
        self.open_depth: list[int] = []  # per track: depth of its last event so far
        self.interned: list[set[int]] = []  # per track: name ids interned on its sequence
        self.described: set[int] = set()  # processes with a track
        self.pids = Pids()  # the pid shown per process, unique within the trace
        self.buffer = np.empty(0, np.uint8)
        self.events = 0
        clocks = P.field_bytes(1, P.field_varint(1, _REALTIME) + P.field_varint(2, 0))
        clocks += P.field_bytes(1, P.field_varint(1, 6) + P.field_varint(2, 0))  # BOOTTIME
        snapshot = clocks + P.field_varint(2, _REALTIME)  # primary_trace_clock
        out.write(
            _packet(
                P.field_varint(_SEQ_ID, _GLOBAL_SEQ),
                P.field_bytes(_SNAPSHOT, snapshot),
            )
        )

    def end(self) -> None:
        self.out.flush()

    # -- tracks -----------------------------------------------------------------------

    def _pid(self, events: Events, proc: int) -> int:
        return self.pids(events.processes, proc)

    def _describe_process(self, events: Events, proc: int) -> None:
        self.described.add(proc)
        info = events.processes[proc]
        pid = self._pid(events, proc)
        desc = P.field_varint(1, pid) + P.field_str(6, str(info.get("name", "?")))
        labels = [f"host={info.get('host', '?')}"]
        if info.get("rank") is not None:
            labels.insert(0, f"rank={info['rank']}")
        if pid != info.get("pid"):
            labels.append(f"pid={info.get('pid')}")
        for label in labels:
            desc += P.field_str(8, label)
        track = P.field_varint(1, _PROCESS_UUID_BASE + proc) + P.field_bytes(3, desc)
        self.out.write(
            _packet(P.field_varint(_SEQ_ID, _GLOBAL_SEQ), P.field_bytes(_DESCRIPTOR, track))
        )

    def _track(self, events: Events, thread: int, lane: int, t0: int) -> int:
        """The track of (thread, lane), made (descriptor and sequence) on first use."""
        key = (thread, lane)
        found = self.tracks.get(key)
        if found is not None:
            return found
        track = self.tracks[key] = len(self.tracks)
        self.last_ts.append(t0)
        self.open_depth.append(0)
        self.interned.append(set())
        info = events.threads[thread]
        proc = int(info["proc"])
        if proc not in self.described:
            self._describe_process(events, proc)
        pid = self._pid(events, proc)
        uuid = track + 1
        desc = P.field_varint(1, uuid) + P.field_varint(5, _PROCESS_UUID_BASE + proc)
        name = str(info.get("name", "?"))
        if lane == 0:
            tid = self.pids.tid(events.processes, proc, int(info.get("tid") or 0))
            thread_desc = P.field_varint(1, pid) + P.field_varint(2, tid) + P.field_str(5, name)
            desc += P.field_bytes(4, thread_desc)
        else:
            desc += P.field_str(2, f"{name} task {lane}")
        out = self.out
        out.write(_packet(P.field_varint(_SEQ_ID, _GLOBAL_SEQ), P.field_bytes(_DESCRIPTOR, desc)))
        clock = P.field_bytes(1, P.field_varint(1, _REALTIME) + P.field_varint(2, t0))
        clock += P.field_bytes(
            1, P.field_varint(1, _INCREMENTAL) + P.field_varint(2, t0) + P.field_varint(3, 1)
        )
        defaults = P.field_varint(58, _INCREMENTAL) + P.field_bytes(11, P.field_varint(11, uuid))
        category = P.field_bytes(
            1, P.field_varint(1, _ERROR_CATEGORY_IID) + P.field_str(2, "error")
        )
        out.write(
            _packet(
                P.field_varint(_SEQ_ID, self._seq(track)),
                P.field_varint(_SEQ_FLAGS, _INCREMENTAL_STATE_CLEARED),
                P.field_varint(_FIRST_ON_SEQ, 1),
                P.field_bytes(_SNAPSHOT, clock),
                P.field_bytes(_DEFAULTS, defaults),
                P.field_bytes(_INTERNED, category),
            )
        )
        return track

    @staticmethod
    def _seq(track: int) -> int:
        return track + 2

    def _intern(self, events: Events, track: int, names: np.ndarray) -> None:
        """Intern on the track's sequence the names (ids) it has not had yet."""
        done = self.interned[track]
        new = [i for i in names.tolist() if i not in done]
        if not new:
            return
        done.update(new)
        body = b"".join(
            P.field_bytes(2, P.field_varint(1, i + 1) + P.field_str(2, events.names[i]))
            for i in new
        )
        self.out.write(
            _packet(P.field_varint(_SEQ_ID, self._seq(track)), P.field_bytes(_INTERNED, body))
        )

    # -- events -----------------------------------------------------------------------

    def feed(self, chunk: Events, keep: np.ndarray | None) -> None:
        n = chunk.records
        if n == 0:
            return
        start = chunk.start
        dur = chunk.dur
        if int(start.max()) > _INT64_MAX // 2 or int(dur.max()) > _INT64_MAX // 2:
            dur = np.minimum(dur, _INT64_MAX - start)  # forged times must not wrap
        end = start + dur
        depth = chunk.depth
        thread, lane = chunk.thread, chunk.lane
        single = bool(thread.min() == thread.max() and lane.min() == lane.max())
        if single:
            local = np.zeros(n, np.int64)
            keys = np.array([int(thread[0]) * (1 << 32) + int(lane[0])], np.int64)
            first_ts = start.min(keepdims=True)
        else:
            key = thread.astype(np.int64) * (1 << 32) + lane
            keys, inv = np.unique(key, return_inverse=True)
            local = inv.reshape(-1).astype(np.int64)
            first_ts = np.full(keys.size, _INT64_MAX, np.int64)
            np.minimum.at(first_ts, local, start)
        tracks = np.array(
            [
                self._track(chunk, int(k >> 32), int(k & 0xFFFFFFFF), t0)
                for k, t0 in zip(keys.tolist(), first_ts.tolist())
            ],
            dtype=np.int64,
        )
        spanning = self._spanning(local, depth.astype(np.int64), tracks, single)
        kept = np.ones(n, np.bool_) if keep is None else keep
        self.events += int(np.count_nonzero(kept))

        rows, kind, ts = self._records(local, depth, spanning, kept, start, end, single)
        rec_local = local[rows]
        rec_track = tracks[rec_local]

        # Intern the names each track uses before its packets refer to them.
        names = chunk.name[rows].astype(np.int64)
        self._intern_used(chunk, tracks, rec_local, names, single)
        if rows.size:
            delta = self._deltas(ts, rec_local, tracks, single)
            self._write_records(rec_track, kind, names, chunk.error[rows], delta, single)
        late = np.flatnonzero(kept & spanning)
        for row in late.tolist():
            self._late_begin(chunk, int(tracks[local[row]]), row)

    def _records(
        self,
        local: np.ndarray,
        depth: np.ndarray,
        spanning: np.ndarray,
        kept: np.ndarray,
        start: np.ndarray,
        end: np.ndarray,
        single: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The chunk's begin and end records, each track's in the order its scopes
        opened and closed: ``(rows, kind, ts)``, tracks one after another.

        The order comes from the nesting (``_tree.dfs_order``); times are then made
        non-decreasing along it, so a viewer that sorts by time keeps that order even
        where a clock's rounding left a child a few ns outside its parent. Damaged
        depths fall back to ordering by time.
        """
        n = depth.size
        if single:
            perm = None
            seg_start = np.zeros(n, np.int64)
            d, has_begin = depth, ~spanning
        else:
            perm = np.argsort(local, kind="stable")
            sl = local[perm]
            cut = np.flatnonzero(np.r_[True, sl[1:] != sl[:-1]])
            seg_start = np.repeat(cut, np.diff(np.r_[cut, n]))
            d, has_begin = depth[perm], ~spanning[perm]
        rec = _tree.dfs_order(seg_start, d, has_begin)
        if rec is None:
            return self._time_sorted(local, depth, spanning, kept, start, end, single)
        rows = rec >> 1
        if perm is not None:
            rows = perm[rows]
        is_begin = (rec & 1).astype(np.bool_)
        if not kept.all():
            sel = kept[rows]
            rows, is_begin = rows[sel], is_begin[sel]
        ts = np.where(is_begin, start[rows], end[rows])
        kind = np.where(is_begin, _BEGIN, _END).astype(np.uint8)
        if single:
            np.maximum.accumulate(ts, out=ts)
        else:
            _segmented_running_max(ts, local[rows])
        return rows, kind, ts

    def _time_sorted(
        self,
        local: np.ndarray,
        depth: np.ndarray,
        spanning: np.ndarray,
        kept: np.ndarray,
        start: np.ndarray,
        end: np.ndarray,
        single: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Records ordered by (track, time) alone, for depths that are not a forest.

        For equal times the order is: ends (children before parents), then begins by
        depth (parents before children), then zero-length events, each begin before its
        own end.
        """
        timed = (end - start) > 0
        ends = np.flatnonzero(kept & (timed | spanning))
        begins = np.flatnonzero(kept & timed & ~spanning)
        begins = begins[np.argsort(depth[begins].astype(np.uint16), kind="stable")]
        zero = np.repeat(np.flatnonzero(kept & ~timed & ~spanning), 2)
        rows = np.concatenate([ends, begins, zero])
        kind = np.full(rows.size, _BEGIN, np.uint8)
        kind[: ends.size] = _END
        kind[ends.size + begins.size + 1 :: 2] = _END
        ts = np.concatenate([end[ends], start[begins], start[zero]])
        if single:
            order = np.argsort(ts, kind="stable")
        else:
            order = np.lexsort((ts, local[rows]))
        return rows[order], kind[order], ts[order]

    def _spanning(
        self, local: np.ndarray, depth: np.ndarray, tracks: np.ndarray, single: bool
    ) -> np.ndarray:
        """Events whose scope began before this chunk (their children came earlier).

        In the order scopes close, an event is such a scope when its depth is below both
        the open depth its track had before the chunk and every depth before it in the
        chunk. Also moves each track's open depth on to its last event's depth.
        """
        n = depth.size
        carried = np.array([self.open_depth[t] for t in tracks.tolist()], np.int64)
        if single:
            before = np.empty(n, np.int64)
            before[0] = carried[0]
            if n > 1:
                np.minimum(np.minimum.accumulate(depth[:-1]), carried[0], out=before[1:])
            self.open_depth[int(tracks[0])] = int(depth[-1])
            return depth < before
        order = np.argsort(local, kind="stable")
        d = depth[order]
        seg = local[order]
        big = np.int64(1 << 20) + int(d.max())
        shifted = d - seg * big
        prefix = np.minimum.accumulate(shifted) + seg * big
        first = np.r_[True, seg[1:] != seg[:-1]]
        before = np.empty(n, np.int64)
        before[1:] = prefix[:-1]
        before[first] = _INT64_MAX
        before = np.minimum(before, carried[seg])
        out = np.empty(n, np.bool_)
        out[order] = d < before
        last = np.r_[seg[1:] != seg[:-1], True]
        for t, dep in zip(tracks[seg[last]].tolist(), d[last].tolist()):
            self.open_depth[t] = dep
        return out

    def _intern_used(
        self,
        events: Events,
        tracks: np.ndarray,
        rec_local: np.ndarray,
        names: np.ndarray,
        single: bool,
    ) -> None:
        if names.size == 0:
            return
        if single:
            if len(events.names) <= 4 * names.size:
                used = np.flatnonzero(np.bincount(names, minlength=len(events.names)))
            else:
                used = np.unique(names)
            self._intern(events, int(tracks[0]), used)
            return
        width = np.int64(len(events.names) + 1)
        pairs = np.unique(rec_local * width + names)
        for loc in np.unique(pairs // width).tolist():
            sel = pairs[(pairs // width) == loc] % width
            self._intern(events, int(tracks[loc]), sel)

    def _deltas(
        self, ts: np.ndarray, rec_local: np.ndarray, tracks: np.ndarray, single: bool
    ) -> np.ndarray:
        """Each record's time after its track's previous one, never negative (clock
        rounding can put a child a few ns outside its parent)."""
        last = np.array([self.last_ts[t] for t in tracks.tolist()], np.int64)
        if single:
            # Sorted by time: only the first records can be earlier than the last one
            # written (a clock's rounding); they are written at that time.
            base = int(last[0])
            if int(ts[0]) < base:
                ts = np.maximum(ts, base)
            delta = np.diff(ts, prepend=base)
            self.last_ts[int(tracks[0])] = int(ts[-1])
            if int(delta.max()) > _MAX_DELTA:
                np.minimum(delta, _MAX_DELTA, out=delta)
            return delta
        clamped = np.maximum(ts, last[rec_local])  # times are sorted within each track
        prev = np.empty_like(clamped)
        prev[1:] = clamped[:-1]
        first = np.r_[True, rec_local[1:] != rec_local[:-1]]
        prev[first] = last[rec_local[first]]
        lastrec = np.r_[rec_local[1:] != rec_local[:-1], True]
        for loc, value in zip(rec_local[lastrec].tolist(), clamped[lastrec].tolist()):
            self.last_ts[int(tracks[loc])] = value
        out: np.ndarray = np.minimum(clamped - prev, _MAX_DELTA)
        return out

    def _write_records(
        self,
        track: np.ndarray,
        kind: np.ndarray,
        names: np.ndarray,
        error: np.ndarray,
        delta: np.ndarray,
        single: bool,
    ) -> None:
        """One packet per record, all of one layout:

        ``0A len | 50 seq | 5A tlen 48 type 50 iid [18 01] | 40 delta``: packet (Trace
        field 1) holding trusted_packet_sequence_id, track_event {type, name_iid,
        category_iids for errors} and timestamp (a delta on the incremental clock).
        """
        m = int(track.size)
        seq = track + 2
        ws = P.varint_width(int(seq.max()))
        iid = names + 1
        wi = P.varint_width(int(iid.max()))
        err = (kind == _BEGIN) & error
        has_err = bool(err.any())
        wn = wi + 2 if has_err else wi
        wd = P.varint_width(int(delta.max()))
        width = 2 + 1 + ws + 2 + 2 + 1 + wn + 1 + wd
        need = m * width
        if self.buffer.size < need:
            self.buffer = np.empty(need, np.uint8)
        rows = self.buffer[:need].reshape(m, width)
        o = 3 + ws  # offset of the track_event field
        template = np.zeros(width, np.uint8)
        template[:3] = (0x0A, width - 2, 0x50)
        template[o : o + 3] = (0x5A, 2 + 1 + wn, 0x48)
        template[o + 4] = 0x50
        template[o + 5 + wn] = 0x40
        if single:
            template[3 : 3 + ws] = np.frombuffer(
                int(P.pack_varints(seq[:1], ws)[0]).to_bytes(8, "little")[:ws], np.uint8
            )
        rows[:] = template
        if not single:
            P.put(rows, 3, ws, P.pack_varints(seq, ws))
        rows[:, o + 3] = kind
        if has_err:
            packed = P.pack_varints(iid, wn)
            word = packed.dtype.type
            tail = word((0x18 | 0x01 << 8) << (8 * wi))  # category_iids: [1]
            packed[err] = P.pack_varints(iid[err], wi) | tail
        else:
            packed = P.pack_varints(iid, wi)
        P.put(rows, o + 5, wn, packed)
        P.put(rows, o + 6 + wn, wd, P.pack_varints(delta, wd))
        self.out.write(rows.data)

    def _late_begin(self, events: Events, track: int, row: int) -> None:
        """The begin of a scope that was open across chunks, at its own (absolute) time."""
        te = P.field_varint(_TE_TYPE, _BEGIN) + P.field_str(
            _TE_NAME, events.names[events.name[row]]
        )
        if events.error[row]:
            te += P.field_str(_TE_CATEGORIES, "error")
        self.out.write(
            _packet(
                P.field_varint(_SEQ_ID, self._seq(track)),
                P.field_varint(_TS, int(events.start[row])),
                P.field_varint(_CLOCK_ID, _REALTIME),
                P.field_bytes(_TRACK_EVENT, te),
            )
        )

    def summary(self) -> dict[str, Any]:
        return {"events": self.events, "tracks": len(self.tracks)}
