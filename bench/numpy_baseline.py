"""The reference the reader is measured against: a plain numpy program that reads the same
log files and computes per-scope counts, sums and a sort for percentiles.

It is what a user fluent in numpy would write in a few minutes from ``docs/FORMAT.md``:
read each file in one piece, keep the event slots, group by name id, sort each group's
durations for p50/p90/p99. It knows nothing liteprof's reader does (no metadata, names
stay ids, no threads, parents, wall clock or damage), so it is a floor that the reader,
which does all of that, must stay under in time (issue 14: at most 0.6x).

    python bench/numpy_baseline.py LOGDIR > out.json
"""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np

SLOT = np.dtype(
    [("start", "<i8"), ("dur", "<i8"), ("child", "<i8"), ("name", "<u4"), ("flags", "<u4")]
)


def rank(n: int, p: float) -> int:
    return max(0, min(n - 1, math.ceil(p / 100.0 * n) - 1))


def summarize(paths: list[str]) -> dict[str, dict[str, int]]:
    names, durs = [], []
    for path in paths:
        slots = np.fromfile(path, dtype=SLOT, offset=4096)  # after the header page
        events = slots[(slots["flags"] & 0xFF) == 1]
        names.append(events["name"])
        durs.append(events["dur"])
    name = np.concatenate(names)
    dur = np.concatenate(durs)
    order = np.argsort(name, kind="stable")
    name, dur = name[order], dur[order]
    # name is sorted now: its runs are the groups (np.unique would sort it all again)
    starts = np.flatnonzero(np.r_[True, name[1:] != name[:-1]])
    ids = name[starts]
    counts = np.diff(np.r_[starts, name.size])
    sums = np.add.reduceat(dur, starts)
    out = {}
    for ident, a, n, total in zip(ids.tolist(), starts.tolist(), counts.tolist(), sums.tolist()):
        seg = np.sort(dur[a : a + n])
        out[str(ident)] = {
            "count": n,
            "total_ns": total,
            "min_ns": int(seg[0]),
            "p50_ns": int(seg[rank(n, 50)]),
            "p90_ns": int(seg[rank(n, 90)]),
            "p99_ns": int(seg[rank(n, 99)]),
            "max_ns": int(seg[-1]),
        }
    return out


def main(argv: list[str]) -> int:
    d = argv[0]
    paths = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".lpf"))
    json.dump(summarize(paths), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
