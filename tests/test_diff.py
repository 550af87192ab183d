"""``liteprof diff``: driven as a user would (child processes that record, then the CLI),
plus the statistics on synthetic ``Events`` with hand-computed answers.

The recorded runs read an injected clock (``liteprof.testing.set_clock``) that each scope
advances by its chosen time plus a seeded jitter of up to 3%: real recording processes,
real logs and the real CLI, but durations that a busy machine cannot change, so the
verdicts asserted ("same" for two runs of one program, 5x slower, +15%) are the
statistics' answers, never the scheduler's.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import liteprof
from liteprof.analysis.diff import build_diff, regressions
from liteprof.analysis.report import build_report
from liteprof.analysis.stats import (
    ALPHA,
    MAX_TEST_EVENTS,
    change_interval,
    mann_whitney,
    normal_quantile,
    t_quantile,
    thin,
)
from liteprof.analysis.types import Diff
from liteprof.log.events import Events
from liteprof.log.reader import read_logs
from liteprof.renderers import render
from liteprof.renderers.base import one_line
from liteprof.renderers.sections import DIFF_HEADERS as HEADERS

# -- driving liteprof as a user would -----------------------------------------------------

PROGRAM = r"""
import json, random, sys
import liteprof
from liteprof import testing

spec = json.loads(sys.argv[1])  # scope name -> [events, microseconds each]
rng = random.Random(int(sys.argv[2]))
now = [10**12]
testing.set_clock(lambda: now[0])


def spin(ns):
    # a machine's jitter, reproducibly: up to 3% more than the chosen time
    now[0] += ns + rng.randrange(ns * 3 // 100 + 1)


# Interleaved rounds, so that a drift of the machine's speed touches every scope alike.
for r in range(max(count for count, _ in spec.values())):
    for name, (count, us) in spec.items():
        if r < count:
            with liteprof.scope(name):
                spin(us * 1000)
"""

ODD_NAMES = ["Odd|pipe", "Odd\nnew line", "<b>bold</b>"]

BASE_SPEC: dict[str, list[int]] = {
    "Work:steady": [30, 200],
    "Work:slow": [30, 200],
    "Work:fast": [30, 1000],
    "Work:small": [30, 400],
    "Only:base": [5, 50],
    **{name: [10, 100] for name in ODD_NAMES},
}
NEW_SPEC: dict[str, list[int]] = {
    "Work:steady": [30, 200],
    "Work:slow": [30, 1000],  # 5x: +400%
    "Work:fast": [30, 200],  # -80%
    "Work:small": [30, 460],  # +15%: significant, but below a 50% threshold
    "Only:new": [5, 50],
    **{name: [10, 100] for name in ODD_NAMES},
}
EXPECTED_NEW = {
    "Work:steady": "same",
    "Work:slow": "slower",
    "Work:fast": "faster",
    "Work:small": "slower",  # +15%: significant and above the default 5%
    "Only:base": "removed",
    "Only:new": "added",
    **{name: "same" for name in ODD_NAMES},
}

SPEC_SCOPE_KEYS = {"name", "base", "new", "change", "verdict"}
EXTRA_SCOPE_KEYS = {"p_value", "change_ci"}
STATS_KEYS = {"count": int, "total_ns": int, "mean_ns": float, "p50_ns": int, "p99_ns": int}

_RUNS: dict[str, dict[str, str]] = {}  # backend -> run name -> log directory


def record(log_dir: str, spec: dict[str, list[int]], seed: int) -> str:
    """Run ``PROGRAM`` in a child interpreter that records into ``log_dir``; ``seed``
    draws its jitter."""
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM, json.dumps(spec), str(seed)],
        env={**os.environ, "LITEPROF_LOG": log_dir},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return log_dir


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m liteprof ARGS``."""
    return subprocess.run(
        [sys.executable, "-m", "liteprof", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


_DIFFS: dict[tuple[str, ...], str] = {}  # the recorded runs never change: one CLI call each


def diff_json(base: str, new: str, *extra: str) -> dict[str, Any]:
    """``liteprof diff BASE NEW --format json EXTRA...``, parsed (a fresh copy each time)."""
    key = (base, new, *extra)
    if key not in _DIFFS:
        proc = cli("diff", base, new, "--format", "json", *extra)
        assert proc.returncode == 0, proc.stderr
        _DIFFS[key] = proc.stdout
    return json.loads(_DIFFS[key])  # type: ignore[no-any-return]


def verdicts(diff: dict[str, Any]) -> dict[str, str]:
    return {row["name"]: row["verdict"] for row in diff["scopes"]}


@pytest.fixture
def runs(backend: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Three recorded runs per recorder backend: base, base again, and the changed one.

    Recorded once per backend (the conftest's ``backend`` fixture sets ``LITEPROF_PURE``
    for the children) and shared by the tests, to keep the file fast.
    """
    if backend not in _RUNS:
        root = tmp_path_factory.mktemp(f"diff-{backend}")
        _RUNS[backend] = {
            "base": record(str(root / "base"), BASE_SPEC, seed=1),
            "again": record(str(root / "again"), BASE_SPEC, seed=2),
            "new": record(str(root / "new"), NEW_SPEC, seed=3),
        }
    return _RUNS[backend]


@pytest.fixture
def text_logs(tmp_path: Any) -> Iterator[tuple[str, str]]:
    """Two vLLM lite-profiler text logs (``name|elapsed_ns``): in NEW, Model:Forward is 2x
    slower and Model:Small 10% slower, in every event."""
    base_lines, new_lines = [], []
    for i in range(60):
        jitter = (i * 7919) % 50_000  # deterministic spread of 5%
        base_lines += [
            f"Model:Forward|{1_000_000 + jitter}",
            f"Model:Same|{500_000 + jitter}",
            f"Model:Small|{1_000_000 + jitter}",
        ]
        new_lines += [
            f"Model:Forward|{2_000_000 + 2 * jitter}",
            f"Model:Same|{500_000 + jitter}",
            f"Model:Small|{1_100_000 + jitter}",
        ]
    base_lines += ["Model:Gone|1000", "", "not a record"]
    new_lines += ["Model:Fresh|1000", "Model:Fresh|2000"]
    base, new = tmp_path / "base.log", tmp_path / "new.log"
    base.write_text("\n".join(base_lines) + "\n", encoding="utf-8")
    new.write_text("\n".join(new_lines) + "\n", encoding="utf-8")
    yield str(base), str(new)


# -- recorded runs through the CLI --------------------------------------------------------


def test_two_runs_of_the_same_program_are_the_same(runs: dict[str, str]) -> None:
    diff = diff_json(runs["base"], runs["again"])
    assert verdicts(diff) == {name: "same" for name in BASE_SPEC}, diff["scopes"]
    for row in diff["scopes"]:
        assert row["base"]["count"] == row["new"]["count"]


def test_slower_faster_added_removed(runs: dict[str, str]) -> None:
    diff = diff_json(runs["base"], runs["new"])
    found = verdicts(diff)
    assert found == EXPECTED_NEW, diff["scopes"]
    rows = {row["name"]: row for row in diff["scopes"]}
    assert rows["Work:slow"]["change"] > 0.2
    assert rows["Work:fast"]["change"] < -0.2
    assert rows["Work:slow"]["p_value"] < ALPHA
    assert rows["Only:base"]["new"] is None and rows["Only:base"]["change"] is None
    assert rows["Only:new"]["base"] is None and rows["Only:new"]["change"] is None
    # Order: present in both by largest |change|, then added, then removed.
    names = [row["name"] for row in diff["scopes"]]
    assert names[-2:] == ["Only:new", "Only:base"]
    changes = [abs(row["change"]) for row in diff["scopes"][:-2]]
    assert changes == sorted(changes, reverse=True)


def test_fail_above_exit_status(runs: dict[str, str]) -> None:
    failing = cli("diff", runs["base"], runs["new"], "--fail-above", "20")
    assert failing.returncode == 1
    message = failing.stderr.strip()
    assert "\n" not in message and "Work:slow" in message and "Traceback" not in message
    assert "Work:fast" not in message  # faster is never a regression
    # Just above and just below the change measured: on a busy machine the 5x slowdown
    # can measure anywhere from 2x to 8x, so a fixed limit like 500% could go either way.
    change = (
        100.0
        * {r["name"]: r for r in diff_json(runs["base"], runs["new"])["scopes"]}["Work:slow"][
            "change"
        ]
    )
    passing = cli("diff", runs["base"], runs["new"], "--fail-above", f"{change + 1:.3f}")
    assert passing.returncode == 0, passing.stderr
    assert passing.stderr == ""
    just_below = cli("diff", runs["base"], runs["new"], "--fail-above", f"{change - 1:.3f}")
    assert just_below.returncode == 1
    same = cli("diff", runs["base"], runs["again"], "--fail-above", "0")
    assert same.returncode == 0, same.stderr


def test_significant_change_below_threshold_is_same(
    runs: dict[str, str], text_logs: tuple[str, str]
) -> None:
    # Model:Small is ~10% slower in every event of the text logs: significant for sure.
    base, new = text_logs
    loose = {r["name"]: r for r in diff_json(base, new)["scopes"]}
    assert loose["Model:Small"]["verdict"] == "slower"
    strict = diff_json(base, new, "--threshold", "20")
    rows = {row["name"]: row for row in strict["scopes"]}
    assert rows["Model:Small"]["verdict"] == "same"
    assert rows["Model:Small"]["p_value"] < 1e-10  # only the threshold held it
    assert 0.05 < rows["Model:Small"]["change"] < 0.20
    assert rows["Model:Forward"]["verdict"] == "slower"
    assert strict["threshold"] == 20.0
    # Recorded: Work:small is 15% slower, Work:slow 5x.
    recorded = verdicts(diff_json(runs["base"], runs["new"], "--threshold", "50"))
    assert recorded["Work:small"] == "same" and recorded["Work:slow"] == "slower"


def test_json_has_the_spec_fields_with_their_types(runs: dict[str, str]) -> None:
    diff = diff_json(runs["base"], runs["new"])
    assert diff["base"] == [runs["base"]] and diff["new"] == [runs["new"]]
    assert {"base", "new", "scopes"} <= set(diff)
    assert set(diff) - {"base", "new", "scopes"} <= {"threshold", "alpha", "test"}
    for row in diff["scopes"]:
        assert SPEC_SCOPE_KEYS <= set(row) and set(row) - SPEC_SCOPE_KEYS <= EXTRA_SCOPE_KEYS
        assert isinstance(row["name"], str)
        assert row["verdict"] in {"slower", "faster", "same", "added", "removed"}
        for side in ("base", "new"):
            stats = row[side]
            if stats is None:
                continue
            assert set(stats) == set(STATS_KEYS)
            for key, kind in STATS_KEYS.items():
                assert type(stats[key]) is kind, (key, stats[key])
            assert stats["p50_ns"] <= stats["p99_ns"]
        both = row["base"] is not None and row["new"] is not None
        assert (row["change"] is not None) == both
        if both:
            assert isinstance(row["change"], float)
            assert math.isclose(row["change"], row["new"]["mean_ns"] / row["base"]["mean_ns"] - 1)
    # The per-run statistics are the report's.
    rows = build_report(read_logs([runs["new"]]))["scopes"]
    report: dict[str, Mapping[str, Any]] = {r["name"]: r for r in rows}
    for row in diff["scopes"]:
        if row["new"] is not None:
            expected = report[row["name"]]
            assert {k: expected[k] for k in STATS_KEYS} == row["new"]
    assert {r["name"]: r["new"]["count"] for r in diff["scopes"] if r["new"]} == {
        name: count for name, (count, _) in NEW_SPEC.items()
    }


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_markdown_keeps_one_row_per_scope(runs: dict[str, str]) -> None:
    proc = cli("diff", runs["base"], runs["new"], "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    rows = [
        line
        for line in proc.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| ---")
    ]
    assert len(rows) == 1 + len(EXPECTED_NEW)  # the header, one row per scope
    for line in rows:
        assert _unescaped_pipes(line) == len(HEADERS) + 1
    assert "<b>" not in proc.stdout and "&lt;b&gt;bold&lt;/b&gt;" in proc.stdout
    assert sum("Odd\\|pipe" in line for line in rows) == 1
    assert sum("Odd\\\\nnew line" in line for line in rows) == 1


def test_table_keeps_one_row_per_scope(runs: dict[str, str]) -> None:
    proc = cli("diff", runs["base"], runs["new"])  # the default format, piped: plain
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("liteprof diff: 9 scopes: ")
    assert "2 slower, 1 faster" in lines[0] and "1 added, 1 removed" in lines[0]
    assert "threshold 5%" in lines[0]
    header = lines.index(next(line for line in lines if line.startswith("Scope")))
    body = lines[header + 2 :]
    assert len(body) == len(EXPECTED_NEW)
    for name, verdict in EXPECTED_NEW.items():
        (row,) = [line for line in body if line.startswith(one_line(name) + " ")]
        assert row.split()[-1] == verdict
    assert "Odd\\nnew line" in proc.stdout


def test_vllm_text_logs(text_logs: tuple[str, str]) -> None:
    base, new = text_logs
    diff = diff_json(base, new)
    assert verdicts(diff) == {
        "Model:Forward": "slower",
        "Model:Small": "slower",
        "Model:Same": "same",
        "Model:Fresh": "added",
        "Model:Gone": "removed",
    }
    rows = {row["name"]: row for row in diff["scopes"]}
    assert rows["Model:Forward"]["change"] == pytest.approx(1.0)
    assert rows["Model:Same"]["change"] == 0.0
    assert rows["Model:Same"]["p_value"] == 1.0
    assert rows["Model:Forward"]["base"]["count"] == 60
    assert rows["Model:Fresh"]["new"] == {
        "count": 2,
        "total_ns": 3000,
        "mean_ns": 1500.0,
        "p50_ns": 1000,
        "p99_ns": 2000,
    }
    assert cli("diff", base, new, "--fail-above", "99").returncode == 1
    assert cli("diff", base, new, "--fail-above", "101").returncode == 0


@pytest.mark.parametrize(
    "case", ["missing-base", "not-a-log", "threshold-abc", "negative", "format"]
)
def test_bad_input_is_one_line_and_exit_2(
    case: str, tmp_path: Any, text_logs: tuple[str, str]
) -> None:
    base, new = text_logs
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01\x02 this is not a log \xff" * 10)
    args = {
        "missing-base": [str(tmp_path / "nope"), new],
        "not-a-log": [base, str(garbage)],
        "threshold-abc": [base, new, "--threshold", "abc"],
        "negative": [base, new, "--threshold", "-5"],
        "format": [base, new, "--format", "csv"],
    }[case]
    proc = cli("diff", *args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("liteprof")


# -- statistics on synthetic events -------------------------------------------------------


def make_events(scopes: dict[str, Any], source: str = "synthetic") -> Events:
    """``Events`` holding the given durations (ns) per scope name."""
    names = list(scopes)
    parts = [np.asarray(scopes[n], dtype=np.int64) for n in names]
    dur = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    name = (
        np.concatenate([np.full(p.size, i, np.int32) for i, p in enumerate(parts)])
        if parts
        else np.zeros(0, np.int32)
    )
    n = dur.size
    return Events(
        sources=[source],
        names=names,
        name=name,
        dur=dur,
        self_ns=dur.copy(),
        start=np.zeros(n, np.int64),
        depth=np.zeros(n, np.int32),
        error=np.zeros(n, bool),
        proc=np.full(n, -1, np.int32),
        thread=np.full(n, -1, np.int32),
        lane=np.zeros(n, np.int32),
        parent=np.full(n, -1, np.int64),
    )


def one(diff: Diff) -> Mapping[str, Any]:
    """The diff's only row, its optional statistics read as numbers: a None where a test
    expects one fails that test's comparison."""
    (row,) = diff["scopes"]
    return row


def test_mann_whitney_hand_computed_example() -> None:
    # base 1 2 3 4, new 3 5 6: joint ranks 1 2 3.5 | 3.5 6 7 (4 has rank 5).
    # R_new = 3.5 + 6 + 7 = 16.5, U_new = 16.5 - 3*4/2 = 10.5, E[U] = 4*3/2 = 6.
    # One tie of 2: var U = 4*3/12 * (8 - (2^3-2)/(7*6)) = 8 - 1/7 = 55/7.
    # z = (10.5 - 6 - 0.5) / sqrt(55/7) = 1.42701..., p = erfc(z / sqrt 2) = 0.153576...
    z, p = mann_whitney(np.array([1, 2, 3, 4]), np.array([3, 5, 6]))
    assert z == pytest.approx(4.0 / math.sqrt(55.0 / 7.0), rel=1e-12)
    assert z == pytest.approx(1.4270121360, rel=1e-9)
    assert p == pytest.approx(0.1535763965, rel=1e-8)
    z2, p2 = mann_whitney(np.array([3, 5, 6]), np.array([1, 2, 3, 4]))
    assert (z2, p2) == pytest.approx((-z, p))


def test_mann_whitney_small_samples_and_ties() -> None:
    # Complete separation: 6 against 6 is significant, 5 against 5 cannot be.
    z, p = mann_whitney(np.arange(6), np.arange(6) + 100)
    assert z > 0 and p == pytest.approx(0.0050749, rel=1e-4)
    _, p5 = mann_whitney(np.arange(5), np.arange(5) + 100)
    assert p5 == pytest.approx(0.0121858, rel=1e-4) and p5 > ALPHA
    assert mann_whitney(np.full(10, 7), np.full(12, 7)) == (0.0, 1.0)
    assert mann_whitney(np.zeros(0, np.int64), np.arange(3)) == (0.0, 1.0)
    # Two constant samples that differ are as separated as samples can be.
    z, p = mann_whitney(np.full(10, 100), np.full(10, 200))
    assert z > 0 and p < 1e-4


def test_quantiles_match_tables() -> None:
    assert normal_quantile(0.995) == pytest.approx(2.5758293035489, rel=1e-12)
    assert normal_quantile(0.975) == pytest.approx(1.9599639845401, rel=1e-12)
    assert t_quantile(0.995, 1) == pytest.approx(63.656741162872, rel=1e-9)
    assert t_quantile(0.995, 5) == pytest.approx(4.0321429835575, rel=1e-9)
    assert t_quantile(0.975, 10) == pytest.approx(2.2281388519650, rel=1e-9)
    assert t_quantile(0.995, 30) == pytest.approx(2.7499956535670, rel=1e-9)
    assert t_quantile(0.975, 1) == pytest.approx(12.706204736174707, rel=1e-9)
    assert t_quantile(0.995, 2) == pytest.approx(9.924843200918272, rel=1e-9)
    # Exact below 200 degrees of freedom, Cornish-Fisher from there on: no seam.
    assert t_quantile(0.995, 199.9999) == pytest.approx(t_quantile(0.995, 200.0), rel=1e-7)
    assert t_quantile(0.995, 1e8) == pytest.approx(normal_quantile(0.995), rel=1e-7)


def test_change_interval() -> None:
    assert change_interval(np.array([5]), np.array([5, 6])) is None
    assert change_interval(np.array([0, 0]), np.array([5, 6])) is None
    assert change_interval(np.full(4, 100), np.full(4, 150)) == (0.5, 0.5)
    rng = np.random.default_rng(7)
    base = rng.normal(1000, 50, 400).astype(np.int64)
    interval = change_interval(base, (base * 1.2).astype(np.int64))
    assert interval is not None
    low, high = interval
    assert 0.1 < low < 0.2 < high < 0.3


def test_clear_changes_give_slower_and_faster() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(1_000_000, 20_000, 200).astype(np.int64)
    slower = one(build_diff(make_events({"s": base}), make_events({"s": base * 2})))
    assert slower["verdict"] == "slower" and slower["change"] == pytest.approx(1.0, rel=1e-3)
    assert slower["p_value"] < 1e-10 and slower["change_ci"][0] > 0.9
    faster = one(build_diff(make_events({"s": base}), make_events({"s": base // 2})))
    assert faster["verdict"] == "faster" and faster["change_ci"][1] < -0.4


def test_threshold_decides_between_significant_and_same() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(1_000_000, 10_000, 300).astype(np.int64)
    new = (base * 1.10).astype(np.int64)  # +10%, overwhelmingly significant
    b, n = make_events({"s": base}), make_events({"s": new})
    assert one(build_diff(b, n, threshold=5))["verdict"] == "slower"
    assert one(build_diff(b, n, threshold=0))["verdict"] == "slower"
    held = one(build_diff(b, n, threshold=10.5))
    assert held["verdict"] == "same" and held["p_value"] < 1e-10
    with pytest.raises(ValueError):
        build_diff(b, n, threshold=-1)
    with pytest.raises(ValueError):
        build_diff(b, n, threshold=math.nan)


def test_tiny_samples_are_never_significant() -> None:
    row = one(build_diff(make_events({"s": [1000]}), make_events({"s": [9000, 9100]})))
    assert row["verdict"] == "same" and row["p_value"] is None and row["change_ci"] is None
    assert row["change"] == pytest.approx(8.05)
    five = one(
        build_diff(make_events({"s": range(1000, 1005)}), make_events({"s": range(9000, 9005)}))
    )
    assert five["verdict"] == "same" and five["p_value"] > ALPHA
    six = one(
        build_diff(make_events({"s": range(1000, 1006)}), make_events({"s": range(9000, 9006)}))
    )
    assert six["verdict"] == "slower"


def test_constant_durations() -> None:
    equal = one(build_diff(make_events({"s": [500] * 20}), make_events({"s": [500] * 30})))
    assert equal["verdict"] == "same" and equal["p_value"] == 1.0 and equal["change"] == 0.0
    moved = one(build_diff(make_events({"s": [500] * 10}), make_events({"s": [1000] * 10})))
    assert moved["verdict"] == "slower" and moved["change_ci"] == [1.0, 1.0]


def test_zero_durations() -> None:
    row = one(build_diff(make_events({"s": [0] * 10}), make_events({"s": [0] * 10})))
    assert row["change"] == 0.0 and row["verdict"] == "same"
    up = build_diff(make_events({"s": [0] * 10}), make_events({"s": [50] * 10}))
    assert one(up)["change"] is None and one(up)["verdict"] == "slower"
    assert regressions(up, 1e6) == ["s"]
    json.loads(render(up, "json", "diff"))
    down = one(build_diff(make_events({"s": [50] * 10}), make_events({"s": [0] * 10})))
    assert down["change"] == -1.0 and down["verdict"] == "faster"


def test_outlier_driven_mean_change_is_same() -> None:
    # The bulk moves by 0.5% (the U test sees it), the mean by +20% through one outlier:
    # the interval of the ratio of means is wide, so the change is not trusted.
    rng = np.random.default_rng(3)
    base = rng.normal(1_000_000, 10_000, 1000).astype(np.int64)
    new = rng.normal(1_005_000, 10_000, 1000).astype(np.int64)
    new[0] = int(new.sum() * 0.2) + new[0]
    row = one(build_diff(make_events({"s": base}), make_events({"s": new})))
    assert row["p_value"] < ALPHA and row["change"] > 0.19
    assert row["change_ci"][0] < 0 < row["change_ci"][1]
    assert row["verdict"] == "same"


def test_outlier_in_a_small_sample_does_not_hide_a_clear_shift() -> None:
    # Every event 3x slower, but one 40 ms outlier among 40 base events of 1 ms makes the
    # interval of the ratio of means include 1: the medians carry the verdict.
    rng = np.random.default_rng(5)
    bulk = rng.normal(1_000_000, 10_000, 40).astype(np.int64)
    base = bulk.copy()
    base[7] += 40_000_000
    row = one(build_diff(make_events({"s": base}), make_events({"s": bulk * 3})))
    assert row["change_ci"][0] < 0 < row["change"]
    assert row["verdict"] == "slower"


def test_huge_scopes_are_thinned_deterministically() -> None:
    rng = np.random.default_rng(4)
    n = MAX_TEST_EVENTS + 50_000
    base = np.sort(rng.integers(1000, 2000, n))
    assert thin(base).size == MAX_TEST_EVENTS
    assert np.array_equal(thin(base[:1000]), base[:1000])
    picked = thin(np.arange(10), 5)
    assert picked.tolist() == [1, 3, 5, 7, 9]  # the midpoints of five equal slices
    b, nw = make_events({"s": base}), make_events({"s": base + 100})
    first, second = build_diff(b, nw), build_diff(b, nw)
    assert first == second
    row = one(first)
    assert row["verdict"] == "slower" and row["base"]["count"] == n
    _, p = mann_whitney(thin(base), thin(base + 100))
    assert row["p_value"] == p


def test_order_sources_and_extras() -> None:
    base = make_events(
        {"a": [100] * 10, "b": [100] * 10, "c": [100] * 10, "gone": [1]}, source="b.log"
    )
    new = make_events(
        {"c": [300] * 10, "a": [150] * 10, "b": [50] * 10, "fresh": [1], "anew": [2]},
        source="n.log",
    )
    diff = build_diff(base, new)
    assert [r["name"] for r in diff["scopes"]] == ["c", "a", "b", "anew", "fresh", "gone"]
    assert [r["verdict"] for r in diff["scopes"]] == [
        "slower",
        "slower",
        "faster",
        "added",
        "added",
        "removed",
    ]
    assert diff["base"] == ["b.log"] and diff["new"] == ["n.log"]
    assert diff["threshold"] == 5.0 and diff["alpha"] == ALPHA
    assert regressions(diff, 60) == ["c"]
    assert regressions(diff, 40) == ["c", "a"]
    assert regressions(diff, 200) == []
    # Ties of |change| fall back to the name.
    tie = build_diff(
        make_events({"y": [10] * 10, "x": [10] * 10}), make_events({"y": [20] * 10, "x": [20] * 10})
    )
    assert [r["name"] for r in tie["scopes"]] == ["x", "y"]
    empty = build_diff(make_events({}), make_events({"z": [5]}))
    assert [r["verdict"] for r in empty["scopes"]] == ["added"]


def test_renderers_escape_names_and_reject_unknown_formats() -> None:
    names = {
        "a|b": [100] * 10,
        "line\nbreak": [100] * 10,
        "<b>x</b>": [100] * 10,
        "tab\there": [100] * 10,
        "x" * 300: [100] * 10,
    }
    diff = build_diff(make_events(names), make_events({k: [200] * 10 for k in names}))
    for fmt in ("plain", "rich", "markdown", "table"):
        text = render(diff, fmt, "diff")
        body = [line for line in text.splitlines() if "+100.0%" in line]
        assert len(body) == len(names), (fmt, text)
    plain = render(diff, "plain", "diff")
    assert "line\\nbreak" in plain and "tab\\there" in plain and "…" in plain
    markdown = render(diff, "markdown", "diff")
    assert "a\\|b" in markdown and "&lt;b&gt;x&lt;/b&gt;" in markdown
    assert json.loads(render(diff, "json", "diff")) == diff
    with pytest.raises(ValueError):
        render(diff, "csv", "diff")


@st.composite
def scope_sets(draw: Any) -> dict[str, list[int]]:
    names = draw(
        st.lists(st.sampled_from(["A:x", "A:y", "B", "c|d", "e\nf"]), unique=True, max_size=4)
    )
    return {n: draw(st.lists(st.integers(0, 10_000), min_size=1, max_size=40)) for n in names}


@settings(max_examples=40, deadline=None)
@given(scope_sets(), scope_sets())
def test_properties(base: dict[str, list[int]], new: dict[str, list[int]]) -> None:
    b, n = make_events(base), make_events(new)
    itself = build_diff(b, b)
    assert all(r["verdict"] == "same" for r in itself["scopes"])
    assert all(r["change"] == 0.0 for r in itself["scopes"])
    forward, backward = build_diff(b, n, threshold=0), build_diff(n, b, threshold=0)
    assert forward == build_diff(b, n, threshold=0)  # deterministic
    assert {r["name"] for r in forward["scopes"]} == set(base) | set(new)
    mirror = {
        "slower": "faster",
        "faster": "slower",
        "added": "removed",
        "removed": "added",
        "same": "same",
    }
    back = {r["name"]: r for r in backward["scopes"]}
    for row in forward["scopes"]:
        other = back[row["name"]]
        if row["change"] is not None and other["change"] is not None:
            assert other["verdict"] == mirror[row["verdict"]]
            assert other["p_value"] == row["p_value"]
        elif row["verdict"] in ("added", "removed"):
            assert other["verdict"] == mirror[row["verdict"]]
    json.loads(render(forward, "json", "diff"))
    for fmt in ("plain", "markdown"):
        render(forward, fmt, "diff")


# -- issue 10, item 9: exact sums, valid JSON on any stdout -------------------------------


def test_totals_are_exact_beyond_int64(tmp_path: Any) -> None:
    """16 events of 9e17 ns: 1.44e19, past int64's 9.2e18, where a numpy sum wraps."""
    big = 900_000_000_000_000_000
    assert int(np.full(16, big, np.int64).sum()) != 16 * big  # what the diff must not do
    diff = build_diff(make_events({"Big:x": [big] * 16}), make_events({"Big:x": [big] * 15 + [1]}))
    (row,) = diff["scopes"]
    assert row["base"] is not None and row["new"] is not None
    assert row["base"]["total_ns"] == 16 * big and row["base"]["mean_ns"] == float(big)
    assert row["new"]["total_ns"] == 15 * big + 1
    base, new = tmp_path / "base.log", tmp_path / "new.log"
    base.write_text(f"Big:x|{big}\n" * 16, encoding="utf-8")
    new.write_text(f"Big:x|{big}\n" * 16 + "Big:x|1\n", encoding="utf-8")
    (side,) = [r for r in diff_json(str(base), str(new))["scopes"]]
    assert (side["base"]["total_ns"], side["new"]["total_ns"]) == (16 * big, 16 * big + 1)


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "utf-8"])
def test_diff_json_is_valid_whatever_stdout_encoding(tmp_path: Any, encoding: str) -> None:
    names = ["café ☕", "lone \udc80 surrogate", 'quote " and \\ and %d', "plain"]
    runs = []
    for run in ("base", "new"):
        log = str(tmp_path / run)
        liteprof.enable(log)
        for _ in range(3):
            for name in names:
                with liteprof.scope(name):
                    pass
        liteprof.disable()
        runs.append(log)
    proc = subprocess.run(
        [sys.executable, "-m", "liteprof", "diff", *runs, "--format", "json"],
        env={**os.environ, "PYTHONIOENCODING": encoding},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    if encoding != "utf-8":
        proc.stdout.decode("ascii")  # JSON is UTF-8: ASCII where stdout takes no more
    diff = json.loads(proc.stdout.decode("utf-8"))
    assert sorted(r["name"] for r in diff["scopes"]) == sorted(names)
    assert all(r["base"]["count"] == r["new"]["count"] == 3 for r in diff["scopes"])
