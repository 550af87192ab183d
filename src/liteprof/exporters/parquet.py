"""Parquet: one row per event, for DuckDB, polars, pandas, Spark (needs ``pyarrow``).

Columns (the SPEC's): ``name``, ``group``, ``start_ns`` (wall clock), ``dur_ns``,
``self_ns``, ``depth``, ``parent`` (the 0-based row number of the enclosing event in
this file, or null), ``error``, ``pid``, ``tid``, ``thread``, ``process``, ``host``,
``rank``. Text columns are dictionary-encoded (a name is stored once per row group);
rows are written in row groups of at most a million, so the conversion never holds more
than one group's Arrow arrays besides the events. Takes vLLM text logs (no start times,
threads or processes there: those columns are null).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np

from ..log.events import Events
from .base import Exporter

ROW_GROUP = 1 << 20


def _strings(pa: Any, values: Sequence[str]) -> Any:
    """An Arrow string array of ``values``. Arrow strings are UTF-8, which a Python str
    with lone surrogates (a name decoded with ``surrogateescape``) is not: such names are
    escaped visibly (``\\udcff``), as the other exporters do, rather than failing."""
    try:
        return pa.array(values, pa.string())
    except UnicodeEncodeError:
        return pa.array(
            [v.encode("utf-8", "backslashreplace").decode("utf-8") for v in values],
            pa.string(),
        )


class ParquetExporter(Exporter):
    """Writes a Parquet file (``.parquet``)."""

    extension = ".parquet"
    needs = "pyarrow"
    timeline = False

    def write(self, events: Events, out: BinaryIO) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        procs, threads = events.processes, events.threads
        names = _strings(pa, events.names)
        group_names: dict[str, int] = {}
        group_of = np.array(
            [
                group_names.setdefault(n.partition(":")[0], len(group_names)) if ":" in n else -1
                for n in events.names
            ]
            + [-1],
            np.int32,
        )
        groups = _strings(pa, list(group_names))
        thread_names = _strings(pa, [str(t.get("name", "?")) for t in threads])
        process_names = _strings(pa, [str(p.get("name", "?")) for p in procs])
        hosts = _strings(pa, [str(p.get("host", "?")) for p in procs])
        tid_of = pa.array([t.get("tid") for t in threads], pa.int64())
        pid_of = pa.array([p.get("pid") for p in procs], pa.int64())
        rank_of = pa.array([p.get("rank") for p in procs], pa.int32())

        def coded(index: np.ndarray, dictionary: Any) -> Any:
            """Dictionary-encoded column; index -1 (unknown) is null."""
            idx = pa.array(index.astype(np.int32), mask=index < 0)
            return pa.DictionaryArray.from_arrays(idx, dictionary)

        schema = pa.schema(
            [
                ("name", pa.dictionary(pa.int32(), pa.string())),
                ("group", pa.dictionary(pa.int32(), pa.string())),
                ("start_ns", pa.int64()),
                ("dur_ns", pa.int64()),
                ("self_ns", pa.int64()),
                ("depth", pa.int32()),
                ("parent", pa.int64()),
                ("error", pa.bool_()),
                ("pid", pa.int64()),
                ("tid", pa.int64()),
                ("thread", pa.dictionary(pa.int32(), pa.string())),
                ("process", pa.dictionary(pa.int32(), pa.string())),
                ("host", pa.dictionary(pa.int32(), pa.string())),
                ("rank", pa.int32()),
            ]
        )
        with pq.ParquetWriter(out, schema, compression="zstd") as writer:
            for lo in range(0, max(events.records, 1), ROW_GROUP):
                sl = slice(lo, lo + ROW_GROUP)
                thread = events.thread[sl]
                proc = events.proc[sl]
                t_idx = pa.array(thread.astype(np.int32), mask=thread < 0)
                p_idx = pa.array(proc.astype(np.int32), mask=proc < 0)
                parent = events.parent[sl]
                columns = [
                    coded(events.name[sl], names),
                    coded(group_of[events.name[sl]], groups),
                    pa.array(events.start[sl], mask=proc < 0),  # text logs: no start
                    pa.array(events.dur[sl]),
                    pa.array(events.self_ns[sl]),
                    pa.array(events.depth[sl].astype(np.int32)),
                    pa.array(parent, mask=parent < 0),
                    pa.array(events.error[sl]),
                    pid_of.take(p_idx),
                    tid_of.take(t_idx),
                    coded(thread, thread_names),
                    coded(proc, process_names),
                    coded(proc, hosts),
                    rank_of.take(p_idx),
                ]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
        self.rows = events.records

    def summary(self) -> dict[str, Any]:
        return {"rows": self.rows}
