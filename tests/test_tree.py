"""The call tree and groups that count time once (SPEC.md, "The call tree and groups").

Programs recorded under ``testing.fixed_clock`` (every clock reading 1 µs after the last)
give exact durations: a scope lasts 1 µs plus 2 µs per scope nested anywhere inside it,
and its self time is 1 µs plus 1 µs per scope directly inside. The expected trees and
groups below are worked out by hand from that rule. Hand-made ``Events`` check the
vectorised code against a plain Python walk of every event's ancestors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import liteprof
from liteprof import testing
from liteprof.analysis.report import build_report
from liteprof.analysis.stats import percentile_rank
from liteprof.analysis.tree import build_nodes
from liteprof.analysis.types import Report, Rows, plain
from liteprof.log.events import Events
from liteprof.log.reader import read_logs
from liteprof.renderers import render

from .helpers import cli

US = 1000


def scope(name: str) -> Any:
    return liteprof.scope(name)  # looked up each time: the backend fixture rebinds it


def record(logdir: str, program: Callable[[], None]) -> Report:
    """Run ``program`` recording, with 1 µs per clock reading; its report."""
    liteprof.enable(logdir)
    try:
        with testing.fixed_clock(itertools.count(0, US).__next__):
            program()
    finally:
        liteprof.disable()
    return build_report(read_logs([logdir]))


def tree_of(report: Report) -> list[tuple[tuple[str, ...], int, int, int, int]]:
    """The tree as (path, count, errors, total_ns, self_ns) in the report's order."""
    out = []
    for node in report["tree"]:
        assert node["name"] == node["path"][-1]
        assert node["depth"] == len(node["path"]) - 1
        assert node["p50_ns"] * node["count"] <= node["total_ns"] or node["count"] == 0
        out.append(
            (tuple(node["path"]), node["count"], node["errors"], node["total_ns"], node["self_ns"])
        )
    return out


def groups_of(report: Report) -> dict[str, tuple[int, list[tuple[str, int, float, str | None]]]]:
    return {
        g["group"]: (
            g["total_ns"],
            [(s["name"], s["total_ns"], s["share"], s["parent"]) for s in g["scopes"]],
        )
        for g in report["groups"]
    }


# -- vLLM's real scope layout -------------------------------------------------------------


def vllm_step(fail: bool = False) -> None:
    with scope("Step:Schedule"):  # 1 µs
        pass
    with scope("Step:Model"):  # 1 + 2 * 12 = 25 µs; self 1 + 4
        with scope("Model:Preprocess"):  # 7 µs; self 3
            with scope("Model:UpdateState"):  # 1 µs
                pass
            with scope("Model:PrepareInput"):  # 3 µs; self 2
                with scope("copy"):
                    pass
        with scope("Model:Forward"):  # 9 µs; self 4
            with scope("attention"):
                pass
            with scope("mlp"):  # 3 µs
                with scope("matmul"):
                    pass
            with scope("norm"):
                pass
        try:
            with scope("Model:Postprocess"):  # 1 µs
                if fail:
                    raise ValueError("bad step")
        except ValueError:
            pass
        with scope("Model:Bookkeep"):  # 3 µs; self 2
            with scope("sync"):
                pass
    with scope("Step:Output"):  # 1 µs
        pass


@pytest.mark.usefixtures("backend")
def test_vllm_layout_tree_and_groups_count_each_nanosecond_once(logdir: str) -> None:
    def program() -> None:
        for i in range(3):
            vllm_step(fail=i == 2)

    report = record(logdir, program)
    S, M = "Step:Model", "Model:"
    assert tree_of(report) == [
        ((S,), 3, 0, 75 * US, 15 * US),
        ((S, M + "Forward"), 3, 0, 27 * US, 12 * US),
        ((S, M + "Forward", "mlp"), 3, 0, 9 * US, 6 * US),
        ((S, M + "Forward", "mlp", "matmul"), 3, 0, 3 * US, 3 * US),
        ((S, M + "Forward", "attention"), 3, 0, 3 * US, 3 * US),
        ((S, M + "Forward", "norm"), 3, 0, 3 * US, 3 * US),
        ((S, M + "Preprocess"), 3, 0, 21 * US, 9 * US),
        ((S, M + "Preprocess", M + "PrepareInput"), 3, 0, 9 * US, 6 * US),
        ((S, M + "Preprocess", M + "PrepareInput", "copy"), 3, 0, 3 * US, 3 * US),
        ((S, M + "Preprocess", M + "UpdateState"), 3, 0, 3 * US, 3 * US),
        ((S, M + "Bookkeep"), 3, 0, 9 * US, 6 * US),
        ((S, M + "Bookkeep", "sync"), 3, 0, 3 * US, 3 * US),
        ((S, M + "Postprocess"), 3, 1, 3 * US, 3 * US),
        (("Step:Schedule",), 3, 0, 3 * US, 3 * US),
        (("Step:Output",), 3, 0, 3 * US, 3 * US),
    ]
    for node in report["tree"]:  # every event of a node lasted the same
        assert node["p50_ns"] == node["p99_ns"] == node["total_ns"] // node["count"]
    # Model's time once: Preprocess, Forward, Postprocess, Bookkeep (20 µs a step), not
    # also UpdateState and PrepareInput inside Preprocess (which made 24 µs).
    assert groups_of(report) == {
        "Step": (
            81 * US,
            [
                ("Step:Model", 75 * US, 75 / 81, None),
                ("Step:Schedule", 3 * US, 3 / 81, None),
                ("Step:Output", 3 * US, 3 / 81, None),
            ],
        ),
        "Model": (
            60 * US,
            [
                ("Model:Forward", 27 * US, 27 / 60, None),
                ("Model:Preprocess", 21 * US, 21 / 60, None),
                ("Model:PrepareInput", 9 * US, 9 / 60, "Model:Preprocess"),
                ("Model:UpdateState", 3 * US, 3 / 60, "Model:Preprocess"),
                ("Model:Bookkeep", 9 * US, 9 / 60, None),
                ("Model:Postprocess", 3 * US, 3 / 60, None),
            ],
        ),
    }
    outer = [s for s in report["groups"][1]["scopes"] if s["parent"] is None]
    assert sum(s["share"] for s in outer) == pytest.approx(1.0)


@pytest.mark.usefixtures("backend")
def test_nested_group_rows_are_indented_under_their_parent(logdir: str) -> None:
    record(logdir, vllm_step)
    proc = cli("report", logdir)
    assert proc.returncode == 0, proc.stderr
    model = proc.stdout.split("Group Model\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in model[2:]] == [
        "Model:Forward",
        "Model:Preprocess",
        "Model:PrepareInput",
        "Model:UpdateState",
        "Model:Bookkeep",
        "Model:Postprocess",
        "TOTAL",
    ]
    indent = {line.split()[0]: len(line) - len(line.lstrip()) for line in model[2:]}
    assert indent["Model:PrepareInput"] == indent["Model:UpdateState"] == 2
    assert indent["Model:Preprocess"] == indent["Model:Forward"] == indent["TOTAL"] == 0
    assert "35.00%" in model[3] and "15.00%" in model[4]  # Preprocess 7/20, PrepareInput 3/20
    md = cli("report", logdir, "--format", "markdown").stdout
    assert "| \u00a0\u00a0Model:UpdateState |" in md


# -- recursion, threads, tasks, text logs -------------------------------------------------


def fact(n: int) -> None:
    with scope("R:fact"):
        if n > 1:
            fact(n - 1)


@pytest.mark.usefixtures("backend")
def test_recursion_is_a_path_per_level_and_counts_once_in_its_group(logdir: str) -> None:
    def program() -> None:
        fact(3)  # 5, 3 and 1 µs
        with scope("R:a"):  # 5 µs
            with scope("R:b"):  # 3 µs
                with scope("R:a"):  # 1 µs
                    pass

    report = record(logdir, program)
    f, a, b = "R:fact", "R:a", "R:b"
    assert tree_of(report) == [
        ((f,), 1, 0, 5 * US, 2 * US),
        ((f, f), 1, 0, 3 * US, 2 * US),
        ((f, f, f), 1, 0, 1 * US, 1 * US),
        ((a,), 1, 0, 5 * US, 2 * US),
        ((a, b), 1, 0, 3 * US, 2 * US),
        ((a, b, a), 1, 0, 1 * US, 1 * US),
    ]
    scopes = {r["name"]: r for r in report["scopes"]}
    assert (scopes[f]["count"], scopes[f]["total_ns"]) == (3, 9 * US)  # every event
    # In the group, each outermost event once: fact 5 µs, a 5 µs (b inside it).
    assert groups_of(report) == {
        "R": (10 * US, [(f, 5 * US, 0.5, None), (a, 5 * US, 0.5, None), (b, 3 * US, 0.3, a)])
    }


@pytest.mark.usefixtures("backend")
def test_threads_have_paths_of_their_own(logdir: str) -> None:
    def x_then_y() -> None:
        with scope("G:x"):  # 3 µs
            with scope("G:y"):
                pass

    def y_alone() -> None:
        with scope("G:y"):  # 3 µs: more of y's time outside x than inside
            with scope("z"):
                pass

    def program() -> None:
        with scope("Main:run"):  # open in time around both threads, in another thread
            for target in (x_then_y, y_alone, x_then_y):
                t = threading.Thread(target=target)
                t.start()
                t.join()

    report = record(logdir, program)
    paths = {node[0]: node[1:] for node in tree_of(report)}
    assert paths[("G:x",)] == (2, 0, 6 * US, 4 * US)
    assert paths[("G:x", "G:y")] == (2, 0, 2 * US, 2 * US)
    assert paths[("G:y",)] == (1, 0, 3 * US, 2 * US)
    assert paths[("G:y", "z")] == (1, 0, 1 * US, 1 * US)
    assert [p for p in paths if p[0] == "Main:run"] == [("Main:run",)]
    g = groups_of(report)["G"]
    # x twice (6 µs) and the lone y (3 µs); y: 2 µs under x, 3 µs outside: no parent.
    assert g == (9 * US, [("G:x", 6 * US, 6 / 9, None), ("G:y", 5 * US, 5 / 9, None)])


@pytest.mark.usefixtures("backend")
def test_interleaved_asyncio_tasks_nest_within_their_own_task(logdir: str) -> None:
    """Task A's scope is open while task B opens, nests and closes its own: B's inner
    scope belongs under B's outer one, though A's contains it in time and closes first."""

    def program() -> None:
        async def task_a(a_in: asyncio.Event, b_done: asyncio.Event) -> None:
            with scope("A:outer"):
                a_in.set()
                await b_done.wait()

        async def task_b(a_in: asyncio.Event, b_done: asyncio.Event) -> None:
            await a_in.wait()
            with scope("B:outer"):
                with scope("B:inner"):
                    await asyncio.sleep(0)
                b_done.set()
                await asyncio.sleep(0)
                await asyncio.sleep(0)

        async def main() -> None:
            a_in, b_done = asyncio.Event(), asyncio.Event()
            await asyncio.gather(task_a(a_in, b_done), task_b(a_in, b_done))

        asyncio.run(main())

    report = record(logdir, program)
    assert sorted(node[0] for node in tree_of(report)) == [
        ("A:outer",),
        ("B:outer",),
        ("B:outer", "B:inner"),
    ]
    # Clock readings: A in 0, B in 1, B:inner 2..3, A out 4, B out 5 (µs).
    assert {node[0]: node[1:] for node in tree_of(report)} == {
        ("A:outer",): (1, 0, 4 * US, 4 * US),
        ("B:outer",): (1, 0, 4 * US, 3 * US),
        ("B:outer", "B:inner"): (1, 0, 1 * US, 1 * US),
    }
    assert groups_of(report)["B"] == (
        4 * US,
        [("B:outer", 4 * US, 1.0, None), ("B:inner", 1 * US, 0.25, "B:outer")],
    )


def test_text_log_scopes_are_all_roots(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(os.fspath(tmp_path), "vllm.log")
    with open(path, "w") as fh:
        fh.write("Model:Preprocess|500\nModel:UpdateState|100\nModel:Preprocess|700\n")
        fh.write("Step:Model|2000\nplain|5\n")
    ev = read_logs([path])
    # Every parent -1 as one value (the shortcut) or as a column: the same nodes.
    fast = build_nodes(ev)
    slow = build_nodes(dataclasses.replace(ev, parent=np.array(ev.parent)))
    for field in ("of_event", "name", "parent", "depth"):
        assert getattr(fast, field).tolist() == getattr(slow, field).tolist(), field
    report = build_report(ev)
    assert tree_of(report) == [
        (("Step:Model",), 1, 0, 2000, 2000),
        (("Model:Preprocess",), 2, 0, 1200, 1200),
        (("Model:UpdateState",), 1, 0, 100, 100),
        (("plain",), 1, 0, 5, 5),
    ]
    assert groups_of(report) == {
        "Model": (
            1300,
            [("Model:Preprocess", 1200, 12 / 13, None), ("Model:UpdateState", 100, 1 / 13, None)],
        ),
        "Step": (2000, [("Step:Model", 2000, 1.0, None)]),
    }


# -- the command line ---------------------------------------------------------------------


@pytest.mark.usefixtures("backend")
def test_tree_option_in_every_format(logdir: str) -> None:
    report = record(logdir, vllm_step)
    expected = [(n["path"], n["count"], n["total_ns"]) for n in report["tree"]]

    table = cli("report", logdir, "--tree")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.split("Call tree")[1].splitlines()[3:]
    assert [ln.split()[0] for ln in lines] == [p[-1] for p, _, _ in expected]
    assert [(len(ln) - len(ln.lstrip())) // 2 for ln in lines] == [
        len(p) - 1 for p, _, _ in expected
    ]
    assert "Group Model" not in table.stdout

    md = cli("report", logdir, "--tree", "--format", "markdown").stdout
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert [r.split(" | ")[0][2:].lstrip("\u00a0") for r in rows] == [p[-1] for p, _, _ in expected]

    csv_out = cli("report", logdir, "--tree", "--format", "csv").stdout.splitlines()
    assert csv_out[0] == "node,parent,depth,name,count,errors,total_ns,self_ns,p50_ns,p99_ns"
    got = [line.split(",") for line in csv_out[1:]]
    by_node = {int(r[0]): r for r in got}
    for r, (path, count, total) in zip(got, expected):
        names = [r[3]]
        up = r[1]
        while up:
            names.insert(0, by_node[int(up)][3])
            up = by_node[int(up)][1]
        assert (names, int(r[4]), int(r[6])) == (path, count, total)

    js = json.loads(cli("report", logdir, "--tree", "--format", "json").stdout)
    assert js["tree"] == json.loads(json.dumps(plain(report["tree"])))


@pytest.mark.usefixtures("backend")
def test_tree_with_by_is_refused_not_ignored(logdir: str) -> None:
    record(logdir, vllm_step)
    for fmt in ("table", "markdown", "csv", "json"):
        proc = cli("report", logdir, "--tree", "--by", "process", "--format", fmt)
        assert proc.returncode == 2, (fmt, proc.stdout)
        assert proc.stderr.count("\n") == 1 and "cannot be combined" in proc.stderr
        assert "Traceback" not in proc.stderr


# -- the vectorised code against a plain walk of every event's ancestors ------------------


def random_events(rng: random.Random, n_names: int, steps: int) -> Events:
    """Events of a random program: nested scopes in a few threads, each thread's events
    in the order they closed, as the reader gives them."""
    pool = [
        f"{rng.choice('ABC')}:{i}" if rng.random() < 0.8 else f"plain{i}" for i in range(n_names)
    ]
    rows: list[dict[str, Any]] = []
    for thread in range(rng.randint(1, 3)):
        stack: list[dict[str, Any]] = []
        for _ in range(steps):
            if stack and (rng.random() < 0.45 or len(stack) > 6):
                ev = stack.pop()
                ev["dur"] = ev["own"] + ev["child"]
                ev["row"] = len(rows)
                for kid in ev["kids"]:
                    kid["parent"] = ev["row"]
                if stack:
                    stack[-1]["child"] += ev["dur"]
                    stack[-1]["kids"].append(ev)
                rows.append(ev)
            else:
                few = min(3, n_names)  # names that recur often: recursion, repeats
                name = rng.randrange(n_names) if rng.random() < 0.7 else rng.randrange(few)
                stack.append(
                    {
                        "name": name,
                        "own": rng.choice([0, 1, 5, 100, rng.randrange(10**6)]),
                        "child": 0,
                        "kids": [],
                        "depth": len(stack),
                        "thread": thread,
                        "error": rng.random() < 0.1,
                        "parent": -1,
                    }
                )
    n = len(rows)

    def col(key: str, dtype: Any) -> np.ndarray:
        return np.array([r[key] for r in rows], dtype=dtype).reshape(n)

    dur = col("dur", np.int64)
    return Events(
        sources=["random"],
        names=pool,
        name=col("name", np.int32),
        start=np.zeros(n, np.int64),
        dur=dur,
        self_ns=dur - col("child", np.int64),
        depth=col("depth", np.int32),
        error=col("error", np.bool_),
        proc=np.zeros(n, np.int32),
        thread=col("thread", np.int32),
        lane=np.zeros(n, np.int32),
        parent=col("parent", np.int64),
    )


def ancestors(ev: Events, row: int) -> Iterator[int]:
    up = int(ev.parent[row])
    while up >= 0:
        yield up
        up = int(ev.parent[up])


def oracle_tree(ev: Events) -> list[dict[str, Any]]:
    nodes: dict[tuple[int, ...], list[int]] = {}
    for row in range(ev.records):
        path = tuple(int(ev.name[r]) for r in [*reversed(list(ancestors(ev, row))), row])
        nodes.setdefault(path, []).append(row)

    def stats(path: tuple[int, ...]) -> dict[str, Any]:
        rows = nodes[path]
        durs = sorted(int(ev.dur[r]) for r in rows)
        n = len(rows)
        return {
            "path": [ev.names[i] for i in path],
            "name": ev.names[path[-1]],
            "depth": len(path) - 1,
            "count": n,
            "errors": sum(bool(ev.error[r]) for r in rows),
            "total_ns": sum(durs),
            "self_ns": sum(int(ev.self_ns[r]) for r in rows),
            "p50_ns": durs[percentile_rank(n, 50)],
            "p99_ns": durs[percentile_rank(n, 99)],
        }

    out: list[dict[str, Any]] = []

    def walk(prefix: tuple[int, ...]) -> None:
        kids = [p for p in nodes if len(p) == len(prefix) + 1 and p[:-1] == prefix]
        for p in sorted(kids, key=lambda p: (-stats(p)["total_ns"], p[-1])):
            out.append(stats(p))
            walk(p)

    walk(())
    return out


def group_of(name: str) -> str | None:
    return name.split(":", 1)[0] if ":" in name else None


def oracle_groups(ev: Events) -> list[dict[str, Any]]:
    names = ev.names
    gtotal: dict[str, int] = {}
    once: dict[int, int] = {}
    votes: dict[int, dict[int, int]] = {}
    for row in range(ev.records):
        me = int(ev.name[row])
        g = group_of(names[me])
        if g is None:
            continue
        above = list(ancestors(ev, row))
        same_group = [a for a in above if group_of(names[int(ev.name[a])]) == g]
        if not same_group:
            gtotal[g] = gtotal.get(g, 0) + int(ev.dur[row])
        if any(int(ev.name[a]) == me for a in above):
            continue
        once[me] = once.get(me, 0) + int(ev.dur[row])
        up = int(ev.name[same_group[0]]) if same_group else -1
        votes.setdefault(me, {})
        votes[me][up] = votes[me].get(up, 0) + int(ev.dur[row])
    parent = {me: min(v, key=lambda up: (-v[up], up)) for me, v in votes.items()}
    out = []
    for g in sorted(gtotal, key=lambda g: min(m for m in once if group_of(names[m]) == g)):
        rows: list[dict[str, Any]] = []

        def walk(up: int, g: str = g, rows: list[dict[str, Any]] = rows) -> None:
            kids = [m for m in once if group_of(names[m]) == g and parent[m] == up]
            for m in sorted(kids, key=lambda m: (-once[m], m)):
                rows.append(
                    {
                        "name": names[m],
                        "total_ns": once[m],
                        "share": once[m] / gtotal[g] if gtotal[g] else 0.0,
                        "parent": names[up] if up >= 0 else None,
                    }
                )
                walk(m)

        walk(-1)
        out.append({"group": g, "total_ns": gtotal[g], "scopes": rows})
    return out


@pytest.mark.parametrize("seed", range(40))
def test_tree_and_groups_match_a_walk_of_every_events_ancestors(seed: int) -> None:
    rng = random.Random(seed)
    ev = random_events(rng, n_names=rng.choice([2, 5, 30]), steps=rng.choice([5, 60, 400]))
    report = build_report(ev)
    assert plain(report["tree"]) == oracle_tree(ev)
    assert plain(report["groups"]) == oracle_groups(ev)
    scopes = {r["name"]: r for r in report["scopes"]}
    for i, name in enumerate(ev.names):  # a scope's figures are all its events'
        mask = ev.name == i
        if mask.any():
            assert scopes[name]["count"] == int(mask.sum())
            assert scopes[name]["total_ns"] == int(ev.dur[mask].sum())
            assert scopes[name]["self_ns"] == int(ev.self_ns[mask].sum())
            durs = np.sort(ev.dur[mask])
            assert scopes[name]["p90_ns"] == int(durs[percentile_rank(durs.size, 90)])
    assert json.loads(render(report, "json")) == json.loads(json.dumps(plain(report)))


def test_a_parent_that_is_not_one_level_up_starts_a_path_of_its_own() -> None:
    """Hand-made columns whose depths disagree with the parents: no event is lost, and
    the tree stays a tree."""
    ev = random_events(random.Random(7), n_names=4, steps=50)
    ev.depth[:] = ev.depth[::-1].copy()  # nonsense depths
    report = build_report(ev)
    assert sum(n["count"] for n in report["tree"]) == ev.records
    assert sum(n["count"] for n in report["tree"] if n["depth"] == 0) >= 1


def test_rows_read_like_a_list_of_dicts() -> None:
    ev = random_events(random.Random(3), n_names=10, steps=300)
    rows = build_report(ev)["tree"]
    assert isinstance(rows, Rows)
    as_list = list(rows)
    assert len(rows) == len(as_list) > 5
    assert rows[0] == as_list[0] and rows[-1] == as_list[-1]
    assert rows[1:4] == as_list[1:4] and rows[::2] == as_list[::2]
    assert rows == as_list and rows != as_list[:-1]
    with pytest.raises(IndexError):
        rows[len(rows)]
    empty = build_report(random_events(random.Random(3), n_names=10, steps=0))
    assert list(empty["tree"]) == [] and list(empty["groups"]) == []


# -- many names (issue 14) ----------------------------------------------------------------


def test_many_names_one_event_each() -> None:
    n = 30_000
    names = [f"M{i % 97}:f{i}" if i % 3 else f"plain{i}" for i in range(n)]
    rng = np.random.default_rng(1)
    dur = rng.integers(1, 10**6, n)
    ev = Events(
        sources=["many"],
        names=names,
        name=rng.permutation(n).astype(np.int32),
        start=np.zeros(n, np.int64),
        dur=dur,
        self_ns=dur,
        depth=np.zeros(n, np.int32),
        error=np.zeros(n, np.bool_),
        proc=np.zeros(n, np.int32),
        thread=np.zeros(n, np.int32),
        lane=np.zeros(n, np.int32),
        parent=np.full(n, -1, np.int64),
    )
    report = json.loads(render(build_report(ev), "json"))
    assert len(report["scopes"]) == len(report["tree"]) == n
    totals = [r["total_ns"] for r in report["scopes"]]
    assert totals == sorted(totals, reverse=True) and sum(totals) == int(dur.sum())
    row = report["scopes"][0]
    assert row["min_ns"] == row["p50_ns"] == row["max_ns"] == row["total_ns"]
    assert row["mean_ns"] == float(row["total_ns"]) and row["count"] == 1
    seen = dict.fromkeys(n.split(":")[0] for n in names if ":" in n)
    assert [g["group"] for g in report["groups"]] == list(seen)
    assert sum(len(g["scopes"]) for g in report["groups"]) == n - len(range(0, n, 3))


def test_group_totals_beyond_int64_stay_exact() -> None:
    """Forged durations near 2**62: the group's total (2**64 and more) and each share are
    those of exact integers."""
    big = 1 << 62
    n = 6
    dur = np.full(n, big, np.int64)
    ev = Events(
        sources=["forged"],
        names=["G:a", "G:b"],
        name=np.array([0, 1] * 3, np.int32),
        start=np.zeros(n, np.int64),
        dur=dur,
        self_ns=dur,
        depth=np.zeros(n, np.int32),
        error=np.zeros(n, np.bool_),
        proc=np.zeros(n, np.int32),
        thread=np.zeros(n, np.int32),
        lane=np.zeros(n, np.int32),
        parent=np.full(n, -1, np.int64),
    )
    report = build_report(ev)
    (group,) = report["groups"]
    assert group["total_ns"] == 6 * big
    assert [(s["total_ns"], s["share"]) for s in group["scopes"]] == [(3 * big, 0.5)] * 2
    assert [n["total_ns"] for n in report["tree"]] == [3 * big, 3 * big]
    assert json.loads(render(report, "json"))["groups"][0]["total_ns"] == 6 * big
