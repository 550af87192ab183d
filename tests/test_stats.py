"""Grouped statistics: the few-keys path (a partial sort per key) gives what the one
sort of every event gives, exact sums beyond int64 included."""

from __future__ import annotations

import numpy as np
import pytest

from liteprof.analysis import stats


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
    sorted_ = stats.grouped(key, span, dur, self_ns, error)
    assert _as_lists(few) == _as_lists(sorted_)
    # and against the definition, for one key
    k = int(few.key[0])
    mine = np.sort(dur[key == k])
    assert int(few.p90[0]) == int(mine[stats.percentile_rank(mine.size, 90)])
    assert int(few.total[0]) == sum(mine.tolist())
