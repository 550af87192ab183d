"""Grouped statistics (``analysis/stats.py``): per-key counts, exact sums and nearest-rank
percentiles, whichever way they are computed (selection in C where ``log/_cread.c`` is
built; in numpy a partial sort per key for a few keys, else one sort of every event; the
``reader_loops`` fixture runs with and without C), checked against the one sort and a
plain Python computation of every group, exact sums beyond int64 included."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from liteprof.analysis import stats
from liteprof.analysis.stats import grouped, percentile_rank, sums_by_key

from .forge import reader_loops

pytestmark = pytest.mark.usefixtures("reader_loops")
assert reader_loops  # the fixture, imported for pytest to find

BIG = 1 << 62


def expected(key: np.ndarray, dur: np.ndarray, self_ns: np.ndarray, error: np.ndarray) -> Any:
    """Per occurring key (ascending): count, errors, total, self, min, p50, p90, p99, max."""
    out = {}
    for k in sorted(set(key.tolist())):
        sel = key == k
        d = sorted(dur[sel].tolist())
        n = len(d)
        out[k] = (
            n,
            int(error[sel].sum()),
            sum(d),
            sum(self_ns[sel].tolist()),
            d[0],
            d[percentile_rank(n, 50)],
            d[percentile_rank(n, 90)],
            d[percentile_rank(n, 99)],
            d[-1],
        )
    return out


def observed(g: stats.Grouped) -> Any:
    return {
        k: tuple(int(getattr(g, s)[i]) for s in stats.Grouped.STATS)
        for i, k in enumerate(g.key.tolist())
    }


@pytest.mark.parametrize("radix", [True, False])
@pytest.mark.parametrize("seed", range(12))
def test_grouped_matches_every_group_sorted_by_hand(
    monkeypatch: pytest.MonkeyPatch, seed: int, radix: bool
) -> None:
    if not radix:  # C's other selection: the values moved by key, then quickselect
        monkeypatch.setattr(stats, "_RADIX_KEYS", 0)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4000))
    n_keys = int(rng.integers(1, 9))
    key = rng.integers(0, n_keys, n).astype(np.int32 if seed % 2 else np.int64)
    shape = seed % 4
    if shape == 0:  # few distinct durations: ties everywhere
        dur = rng.integers(0, 5, n)
    elif shape == 1:  # forged durations: every sum is beyond int64, spans of 62 bits
        dur = rng.integers(BIG, 1 << 63, n, dtype=np.int64) >> int(rng.integers(0, 2))
    elif shape == 2:  # already in order, the worst case of a naive quickselect
        dur = np.sort(rng.integers(0, 10**9, n))
    else:
        dur = rng.integers(0, 10**6, n)
    dur = dur.astype(np.int64)
    self_ns = (dur // 3).astype(np.int64)
    error = rng.random(n) < 0.1
    g = grouped(key, n_keys, dur, self_ns, error)
    assert observed(g) == expected(key, dur, self_ns, error)


def test_grouped_with_a_million_events_in_two_groups() -> None:
    rng = np.random.default_rng(7)
    n = 1_000_000
    key = (rng.random(n) < 0.01).astype(np.int32)  # one group of ~1%, one of ~99%
    dur = rng.integers(0, 1 << 40, n).astype(np.int64)
    error = np.zeros(n, dtype=bool)
    g = grouped(key, 2, dur, dur, error)
    for i, k in enumerate(g.key.tolist()):
        d = np.sort(dur[key == k])
        c = d.size
        assert int(g.count[i]) == c and int(g.total[i]) == int(d.sum())
        assert [int(g.min[i]), int(g.p50[i]), int(g.p90[i]), int(g.p99[i]), int(g.max[i])] == [
            int(d[0]),
            int(d[percentile_rank(c, 50)]),
            int(d[percentile_rank(c, 90)]),
            int(d[percentile_rank(c, 99)]),
            int(d[-1]),
        ]


def test_sums_by_key_are_exact_beyond_int64_and_zero_for_absent_keys() -> None:
    key = np.array([3, 0, 3, 3], dtype=np.int64)
    values = np.array([BIG, 5, BIG + 7, BIG], dtype=np.int64)
    sums = sums_by_key(key, 5, values)
    assert [int(x) for x in sums] == [5, 0, 0, 3 * BIG + 7, 0]
    small = sums_by_key(key.astype(np.int32), 5, np.array([1, 2, 3, 4], dtype=np.int64))
    assert small.dtype == np.int64 and small.tolist() == [2, 0, 0, 8, 0]


def _as_lists(g: stats.Grouped) -> dict[str, list[int]]:
    return {s: [int(x) for x in getattr(g, s).tolist()] for s in ("key", *g.STATS)}


@pytest.mark.parametrize("seed", range(8))
def test_few_keys_equal_the_sort(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(100, 5000))
    n_keys = int(rng.integers(1, 17))
    key = rng.integers(0, n_keys, n) * int(rng.integers(1, 4))  # gaps: keys that never occur
    top = 1 << 62 if seed % 3 == 0 else 10**9  # sums that wrap an int64, or not
    dur = rng.integers(0, top, n)
    self_ns = dur if seed % 2 else dur - rng.integers(0, 1000, n).clip(0, dur)
    error = rng.random(n) < (0.1 if seed % 4 else 0.0)
    span = int(key.max()) + 1
    few = stats.grouped(key, span, dur, self_ns, error)
    monkeypatch.setattr(stats, "_FEW_KEYS", 0)
    monkeypatch.setattr(stats, "_SELECT_MIN_MEAN", 1 << 62)
    sorted_ = stats.grouped(key, span, dur, self_ns, error)
    assert _as_lists(few) == _as_lists(sorted_)
    # and against the definition, for one key
    k = int(few.key[0])
    mine = np.sort(dur[key == k])
    assert int(few.p90[0]) == int(mine[stats.percentile_rank(mine.size, 90)])
    assert int(few.total[0]) == sum(mine.tolist())
