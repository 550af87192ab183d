"""Turn ``Events`` into the report: per-scope statistics, groups, the call tree, processes.

The result is the ``Report`` of ``types.py``, the JSON object of ``SPEC.md`` (``liteprof
report --format json``), documented field by field in ``docs/REPORT.md``; every report
renderer draws this one object.

Everything is computed on columns: the events are grouped once by call-tree node (sorts
and bincounts, ``stats.grouped``); a scope's statistics are its node's where the scope has
one node (the usual case), else grouped from its events. Groups and the tree are computed
on nodes, never on events. Tables are ``Rows``, built into dicts only when read.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator, Sequence
from itertools import compress, repeat
from operator import getitem, itemgetter
from typing import Any, Callable

import numpy as np

from .._version import __version__
from ..log.events import Events, Names
from . import dropped
from .stats import Grouped, grouped, sums_by_key
from .tree import Nodes, build_nodes, nearest_above, preorder
from .types import (
    ANY,
    FLOAT,
    INT,
    OPT_FLOAT,
    OPT_INT,
    OPT_STR,
    PATH,
    ROWS,
    STR,
    CrossProcessRow,
    GroupRow,
    GroupScope,
    ProcessRow,
    Report,
    Rows,
    ScopeRow,
    TreeNode,
)

BY_CHOICES = ("process", "thread")

SCOPE_FIELDS = (
    ("name", STR),
    ("group", OPT_STR),
    ("count", INT),
    ("errors", INT),
    ("total_ns", INT),
    ("self_ns", INT),
    ("mean_ns", FLOAT),
    ("min_ns", INT),
    ("p50_ns", INT),
    ("p90_ns", INT),
    ("p99_ns", INT),
    ("max_ns", INT),
)
GROUP_FIELDS = (("group", STR), ("total_ns", INT), ("scopes", ROWS))
GROUP_SCOPE_FIELDS = (("name", STR), ("total_ns", INT), ("share", FLOAT), ("parent", OPT_STR))
TREE_FIELDS = (
    ("path", PATH),
    ("name", STR),
    ("depth", INT),
    ("count", INT),
    ("errors", INT),
    ("total_ns", INT),
    ("self_ns", INT),
    ("p50_ns", INT),
    ("p99_ns", INT),
)
CROSS_FIELDS = (
    ("name", STR),
    ("processes", INT),
    ("min_total_ns", INT),
    ("median_total_ns", INT),
    ("max_total_ns", INT),
    ("slowest", ANY),
    ("spread", OPT_FLOAT),
)


def group_of(name: str) -> str | None:
    """The text before the first ``:``; ``None`` for a name without one."""
    head, sep, _ = name.partition(":")
    return head if sep else None


def _rows(fields: tuple[tuple[str, str], ...], n: int, columns: Callable[..., Any]) -> Rows[Any]:
    return Rows([f for f, _ in fields], [k for _, k in fields], n, columns)


def _pick(items: Sequence[Any], index: np.ndarray) -> list[Any]:
    """``[items[i] for i in index]``, at C speed (``itemgetter``, or ``Names.take``)."""
    if isinstance(items, Names):
        return items.take(index)
    if index.size == 0:
        return []
    if index.size == 1:
        return [items[int(index[0])]]
    return list(itemgetter(*index.tolist())(items))


def _ratios(num: np.ndarray, den: np.ndarray) -> list[float]:
    """``[n / d ...]`` as Python computes it: numpy's division is the same (correctly
    rounded) where both fit a float exactly, below 2**53; Python ints otherwise."""
    exact = num.dtype != object and den.dtype != object
    if exact and (num.size == 0 or max(int(num.max()), int(den.max())) < 1 << 53):
        return (num / den).tolist()  # type: ignore[no-any-return]
    return [n / d for n, d in zip(num.tolist(), den.tolist())]


def _small(index: np.ndarray) -> np.ndarray:
    """An index array kept by a table as int32 where it fits: half the memory."""
    if index.size and index.dtype != np.int32 and -(1 << 31) <= int(index.min()):
        if int(index.max()) < 1 << 31:
            return index.astype(np.int32)
    return index


def _lister(index: np.ndarray) -> Callable[[np.ndarray], list[Any]]:
    """``column[index].tolist()``, made once per column: columns that are one array
    (every statistic of one-event scopes) give one list, which writers format once."""
    made: dict[int, list[Any]] = {}

    def at(column: np.ndarray) -> list[Any]:
        out = made.get(id(column))
        if out is None:
            out = made[id(column)] = column[index].tolist()
        return out

    return at


def _desc(total: np.ndarray) -> np.ndarray:
    """A sort key that orders ``total`` descending (float where a total is a Python int
    beyond int64: only forged logs have those)."""
    if total.dtype == object:
        return -total.astype(np.float64)
    return -total


def _asc(total: np.ndarray) -> np.ndarray:
    """``total`` as a sort key (float where a total is a Python int beyond int64)."""
    return total.astype(np.float64) if total.dtype == object else total


def _sum_by(key: np.ndarray, n_keys: int, values: np.ndarray) -> np.ndarray:
    """Exact sums of ``values`` (int64, or Python ints) per key in ``[0, n_keys)``."""
    if values.dtype != object:
        return sums_by_key(key, n_keys, values)
    out = np.zeros(n_keys, dtype=object)
    out[:] = 0
    np.add.at(out, key, values)
    return out


class _Analysis:
    """The events grouped by call-tree node, and what follows from that."""

    def __init__(self, ev: Events) -> None:
        self.ev = ev
        self.names = ev.names
        self.n_names = len(ev.names)
        self.nodes: Nodes = build_nodes(ev)
        # Every node has events: its statistics are row ``node`` of this table.
        self.node_stats: Grouped = grouped(
            self.nodes.of_event, self.nodes.size, ev.dur, ev.self_ns, ev.error
        )
        self._name_stats()
        if ev.dropped:
            self._add_dropped()
        self._group_index()

    # -- scopes ---------------------------------------------------------------------------

    def _name_stats(self) -> None:
        """``table`` and ``name_row``: row ``name_row[i]`` of ``table`` is name ``i``'s
        statistics (-1: no events)."""
        nodes, stats = self.nodes, self.node_stats
        per_name = np.bincount(nodes.name, minlength=self.n_names)
        self.name_row = np.full(self.n_names, -1, dtype=np.int64)
        single = per_name[nodes.name] == 1
        self.name_row[nodes.name[single]] = np.flatnonzero(single)
        if single.all():
            self.table = stats
            return
        # Names on several paths (called from two places, recursion): from their events.
        ev = self.ev
        mask = (per_name > 1)[ev.name]
        several = grouped(
            ev.name[mask], self.n_names, ev.dur[mask], ev.self_ns[mask], ev.error[mask]
        )
        del mask
        self.name_row[several.key] = stats.size + np.arange(several.size)
        self.table = Grouped.concat([stats, several])

    def _add_dropped(self) -> None:
        """What bounded logs dropped, into the per-name table (``dropped.py``)."""
        sums = dropped.sums(self.ev.dropped, lambda r: r.name)
        row_of = {k: int(self.name_row[k]) for k in sums}
        self.table = dropped.merge(self.table, row_of, sums)
        for k, r in row_of.items():
            self.name_row[k] = r

    def scopes(self) -> Rows[ScopeRow]:
        present = np.flatnonzero(self.name_row >= 0)
        rows = self.name_row[present]
        order = present[np.lexsort((present, _desc(self.table.total[rows])))]
        return self._scope_rows(order, self.name_row[order], self.table)

    def _scope_rows(
        self,
        name_index: np.ndarray,
        stat_row: np.ndarray,
        table: Grouped,
        extra: tuple[tuple[str, str], ...] = (),
        describe: Callable[[int, int], list[list[Any]]] | None = None,
    ) -> Rows[ScopeRow]:
        """Scope rows: row ``i`` is name ``name_index[i]`` with the statistics in row
        ``stat_row[i]`` of ``table``; ``describe(a, b)`` gives the ``extra`` columns."""
        names, group_of_name = self.names, self.group_of_name
        group_or_none = [*self.group_names, None]  # index -1: no group
        name_index, stat_row = _small(name_index), _small(stat_row)
        # The columns themselves, not the table (whose keys are not needed any more).
        count, errors, total, self_ns = table.count, table.errors, table.total, table.self_ns
        low, p50, p90, p99, high = table.min, table.p50, table.p90, table.p99, table.max

        def columns(a: int, b: int) -> list[list[Any]]:
            idx = name_index[a:b]
            rows = stat_row[a:b]
            at = _lister(rows)
            cols: list[list[Any]] = [
                _pick(names, idx),
                _pick(group_or_none, group_of_name[idx]),
                at(count),
                at(errors),
                at(total),
                at(self_ns),
                _ratios(total[rows], count[rows]),
                at(low),
                at(p50),
                at(p90),
                at(p99),
                at(high),
            ]
            if describe is not None:
                cols += describe(a, b)
            return cols

        return _rows(SCOPE_FIELDS + extra, int(name_index.size), columns)

    def split_scopes(self, by: str) -> Rows[ScopeRow]:
        """One row per (scope, process) or (scope, process, thread)."""
        ev = self.ev
        part = ev.proc if by == "process" else ev.thread
        n_parts = len(ev.processes) if by == "process" else len(ev.threads)
        n = n_parts + 1  # the last slot: events whose process or thread is unknown
        key = ev.name.astype(np.int64) * n + np.where(part < 0, n - 1, part)
        stats = grouped(key, self.n_names * n, ev.dur, ev.self_ns, ev.error)
        del key
        if ev.dropped:  # by process, or, having no thread, in the "unknown thread" row
            sums = dropped.sums(
                ev.dropped, lambda r: r.name * n + (r.proc if by == "process" else n - 1)
            )
            at = np.searchsorted(stats.key, list(sums))
            row_of = {
                k: int(i) if i < stats.size and stats.key[i] == k else -1
                for k, i in zip(sums, at.tolist())
            }
            stats = dropped.merge(stats, row_of, sums)
        name_idx, part_idx = np.divmod(stats.key, n)
        order = np.lexsort((part_idx, name_idx, _desc(stats.total)))
        name_idx, part_idx = name_idx[order], part_idx[order]
        processes, threads = ev.processes, ev.threads

        def describe(a: int, b: int) -> list[list[Any]]:
            parts = part_idx[a:b].tolist()
            if by == "process":
                return [[processes[p]["pid"] if p < n_parts else None for p in parts]]
            pid: list[int | None] = []
            tid: list[int | None] = []
            tname: list[str | None] = []
            for p in parts:
                if p < n_parts:
                    info = threads[p]
                    pid.append(processes[info["proc"]]["pid"])
                    tid.append(info["tid"])
                    tname.append(info["name"])
                else:
                    pid.append(None)
                    tid.append(None)
                    tname.append(None)
            return [pid, tid, tname]

        extra: tuple[tuple[str, str], ...] = (
            (("pid", OPT_INT),)
            if by == "process"
            else (("pid", OPT_INT), ("tid", OPT_INT), ("thread", OPT_STR))
        )
        return self._scope_rows(name_idx, order, stats, extra, describe)

    # -- groups ---------------------------------------------------------------------------

    def _group_index(self) -> None:
        """``group_of_name`` (index into ``group_names``, -1: no group) and
        ``group_names`` (in order of first appearance).

        The only pass over the names, in C-level ``map``s over blocks of them: a
        ``str.find`` for the ``:``, a slice for the head, a dict that numbers heads.
        """
        fast = self.names.heads(":") if isinstance(self.names, Names) else None
        if fast is not None:  # the same, vectorised on the names' packed text
            self.group_of_name, self.group_names = fast
            return
        numbers: defaultdict[str, int] = defaultdict(itertools.count().__next__)
        out = np.full(self.n_names, -1, dtype=np.int32 if self.n_names < 1 << 31 else np.int64)
        names = self.names
        for lo in range(0, self.n_names, 1 << 16):
            block = names[lo : lo + (1 << 16)]
            colon = np.fromiter(map(str.find, block, repeat(":")), np.int64, len(block))
            has = colon >= 0
            heads: Iterator[str] = map(
                getitem, compress(block, has.tolist()), map(slice, colon[has].tolist())
            )
            out[lo : lo + len(block)][has] = np.fromiter(
                map(numbers.__getitem__, heads), np.int64, int(np.count_nonzero(has))
            )
        self.group_of_name = out
        self.group_names = list(numbers)

    def _group_scopes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """The scopes of all groups and what the group table needs of them: ``members``
        (name indices, ascending), each one's ``parent`` (a name index, -1: none) and
        time counted once, and each group's time counted once; ``None`` if no scope has
        a group. Computed on nodes: all events of a node have the same scopes above."""
        nodes = self.nodes
        node_group = self.group_of_name[nodes.name]
        in_group = np.flatnonzero(node_group >= 0)
        if in_group.size == 0:
            return None
        total = self.node_stats.total
        # The nearest node above of the same group, and of the same name.
        same_group = nearest_above(nodes.parent, node_group, node_group, in_group)
        outer = same_group < 0
        group_total = _sum_by(
            node_group[in_group[outer]], len(self.group_names), total[in_group[outer]]
        )
        del node_group, outer
        # A scope's time once: its events not inside an event of the same name.
        once = nearest_above(nodes.parent, nodes.name, nodes.name, in_group) < 0
        node = in_group[once]
        above = same_group[once]
        del in_group, same_group, once
        scope = nodes.name[node]
        weight = total[node]
        scope_total = _sum_by(scope, self.n_names, weight)
        if int(above.max()) < 0:  # no scope nested in a scope of its own group
            members = np.flatnonzero(np.bincount(scope, minlength=self.n_names))
            parent = np.full(members.size, -1, dtype=np.int64)
        else:
            # Its parent: the scope of the nearest same-group node above that holds most
            # of its time (ties: none, then the name that appeared first).
            up = np.where(above >= 0, nodes.name[np.maximum(above, 0)], -1)
            span = self.n_names + 1
            pairs, inverse = np.unique(scope * span + (up + 1), return_inverse=True)
            weight = _sum_by(inverse.reshape(-1), int(pairs.size), weight)
            pair_scope, pair_up = np.divmod(pairs, span)
            best = np.lexsort((pair_up, _desc(weight), pair_scope))
            first = np.r_[True, pair_scope[best][1:] != pair_scope[best][:-1]]
            members = pair_scope[best[first]]
            parent = _break_cycles(members, pair_up[best[first]] - 1)
        return members, parent, scope_total[members], group_total

    def groups(self) -> Rows[GroupRow]:
        """Each group's time counted once, its scopes depth first under their parents
        (groups in order of first appearance, children by time descending)."""
        fields = [f for f, _ in GROUP_FIELDS]
        parts = self._group_scopes()
        if parts is None:
            return Rows.empty(fields, [k for _, k in GROUP_FIELDS])
        members, parent, member_total, group_total = parts
        n_groups = len(self.group_names)
        member_group = self.group_of_name[members]
        first_name = np.full(n_groups, self.n_names, dtype=np.int64)
        np.minimum.at(first_name, member_group, members)
        group_rank = np.argsort(np.argsort(first_name, kind="stable"), kind="stable")
        del first_name
        if int(parent.max()) < 0:
            walk = np.lexsort((members, _desc(member_total), group_rank[member_group]))
            o_parent = None
        else:
            walk = _group_walk(members, parent, member_total, member_group, group_rank)
            o_parent = parent[walk]
        o_name, o_total, o_group = _small(members[walk]), member_total[walk], member_group[walk]
        if o_parent is not None:
            o_parent = _small(o_parent)
        del members, parent, member_total, member_group, walk
        cuts = np.flatnonzero(np.r_[True, o_group[1:] != o_group[:-1], True])
        starts, ends = cuts[:-1], cuts[1:]
        group_ids = o_group[starts]
        del o_group
        names, group_names = self.names, self.group_names

        def scope_rows(lo: int, hi: int, whole: int) -> Rows[GroupScope]:
            def columns(a: int, b: int) -> list[list[Any]]:
                sl = slice(lo + a, lo + b)
                t = o_total[sl].tolist()
                return [
                    _pick(names, o_name[sl]),
                    t,
                    _ratios(o_total[sl], np.full(b - a, whole)) if whole else [0.0] * len(t),
                    [None] * len(t)
                    if o_parent is None
                    else [names[p] if p >= 0 else None for p in o_parent[sl].tolist()],
                ]

            return _rows(GROUP_SCOPE_FIELDS, hi - lo, columns)

        def columns(a: int, b: int) -> list[list[Any]]:
            ids = group_ids[a:b]
            totals = group_total[ids].tolist()
            return [
                [group_names[i] for i in ids.tolist()],
                totals,
                [
                    scope_rows(lo, hi, t)
                    for lo, hi, t in zip(starts[a:b].tolist(), ends[a:b].tolist(), totals)
                ],
            ]

        return _rows(GROUP_FIELDS, int(starts.size), columns)

    # -- the tree -------------------------------------------------------------------------

    def tree(self) -> Rows[TreeNode]:
        nodes, stats, names = self.nodes, self.node_stats, self.names
        rank = np.empty(nodes.size, dtype=np.int64)
        rank[np.lexsort((nodes.name, _desc(stats.total)))] = np.arange(nodes.size)
        order = _small(preorder(nodes.parent, nodes.depth, rank))
        del rank
        parent, node_name, node_depth = (
            _small(nodes.parent),
            _small(nodes.name),
            _small(nodes.depth),
        )
        count, errors, total, self_ns = stats.count, stats.errors, stats.total, stats.self_ns
        p50, p99 = stats.p50, stats.p99

        def path_of(v: int) -> list[str]:
            out = []
            while v >= 0:
                out.append(names[int(node_name[v])])
                v = int(parent[v])
            out.reverse()
            return out

        def columns(a: int, b: int) -> list[list[Any]]:
            ids = order[a:b]
            own = _pick(names, node_name[ids])
            up = parent[ids]
            if int(up.max()) < 0:  # roots only
                paths = [[name] for name in own]
            else:
                paths = []
                known: dict[int, list[str]] = {}  # depth first: a parent comes before
                for v, p, name in zip(ids.tolist(), up.tolist(), own):
                    if p < 0:
                        path = [name]
                    else:
                        above = known.get(p)
                        path = (above if above is not None else path_of(p)) + [name]
                    known[v] = path
                    paths.append(path)
            at = _lister(ids)
            return [
                paths,
                own,
                node_depth[ids].tolist(),
                at(count),
                at(errors),
                at(total),
                at(self_ns),
                at(p50),
                at(p99),
            ]

        return _rows(TREE_FIELDS, nodes.size, columns)

    # -- processes ------------------------------------------------------------------------

    def cross_process(self) -> Rows[CrossProcessRow]:
        """Per scope, how its total spreads over processes, so that a straggler stands
        out; largest per-process total first."""
        ev = self.ev
        n_proc = len(ev.processes)
        fields = [f for f, _ in CROSS_FIELDS]
        kinds = [k for _, k in CROSS_FIELDS]
        if n_proc < 2 or ev.dur.size == 0:
            return Rows.empty(fields, kinds)
        known = ev.proc >= 0
        if not known.any():  # only text logs had events: no process to compare
            return Rows.empty(fields, kinds)
        key = ev.name[known].astype(np.int64) * n_proc + ev.proc[known]
        span = self.n_names * n_proc
        if span <= 4 * key.size + 65536:
            pairs = np.flatnonzero(np.bincount(key, minlength=span))
            totals = _sum_by(key, span, ev.dur[known])[pairs]
        else:
            # Many names times many processes: only the (name, process) pairs that occur,
            # never a names x processes matrix.
            pairs, inverse = np.unique(key, return_inverse=True)
            totals = _sum_by(inverse.reshape(-1), int(pairs.size), ev.dur[known])
            del inverse
        del key, known
        pair_name, pair_proc = np.divmod(pairs, n_proc)
        # Per name, totals ascending; among equal totals the lowest process last, so that
        # the last of a name is the slowest process (the first of them).
        order = np.lexsort((-pair_proc, _asc(totals), pair_name))
        pair_name, pair_proc, totals = pair_name[order], pair_proc[order], totals[order]
        cuts = np.flatnonzero(np.r_[True, pair_name[1:] != pair_name[:-1], True])
        starts, ends = cuts[:-1], cuts[1:]
        counts = ends - starts
        lo_mid = starts + (counts - 1) // 2
        hi_mid = starts + counts // 2
        rows = np.lexsort((pair_name[starts], _desc(totals[ends - 1])))
        starts, ends, lo_mid, hi_mid, counts = (
            starts[rows],
            ends[rows],
            lo_mid[rows],
            hi_mid[rows],
            counts[rows],
        )
        names, processes = self.names, ev.processes

        def columns(a: int, b: int) -> list[list[Any]]:
            first = starts[a:b]
            last = ends[a:b] - 1
            low = totals[first].tolist()
            high = totals[last].tolist()
            mid = [
                (x + y) // 2
                for x, y in zip(totals[lo_mid[a:b]].tolist(), totals[hi_mid[a:b]].tolist())
            ]
            slowest = []
            for p in pair_proc[last].tolist():
                proc = processes[p]
                slowest.append({"pid": proc["pid"], "name": proc["name"], "rank": proc["rank"]})
            return [
                _pick(names, pair_name[first]),
                counts[a:b].tolist(),
                low,
                mid,
                high,
                slowest,
                [y / x if x > 0 else None for x, y in zip(low, high)],
            ]

        return _rows(CROSS_FIELDS, int(starts.size), columns)


def _group_walk(
    members: np.ndarray,
    parent: np.ndarray,
    total: np.ndarray,
    group: np.ndarray,
    group_rank: np.ndarray,
) -> np.ndarray:
    """Positions of ``members`` depth first: a forest with one extra root per group
    (ranked ``group_rank``) above that group's outer scopes, children by ``total``
    descending, then name."""
    m = int(members.size)
    groups = np.flatnonzero(np.bincount(group, minlength=group_rank.size))
    k = int(groups.size)
    virtual = np.full(group_rank.size, -1, dtype=np.int64)
    virtual[groups] = np.arange(k)
    position = np.full(int(members.max()) + 1, -1, dtype=np.int64)
    position[members] = np.arange(m)
    up = np.where(parent >= 0, position[np.maximum(parent, 0)], -1)
    del position
    forest_parent = np.concatenate(
        (np.full(k, -1, np.int64), np.where(up >= 0, k + up, virtual[group]))
    )
    forest_depth = np.concatenate((np.zeros(k, np.int64), _depths(up) + 1))
    rank = np.empty(m, dtype=np.int64)
    rank[np.lexsort((members, _desc(total)))] = np.arange(m)
    forest_rank = np.concatenate((group_rank[groups], rank))
    walk = preorder(forest_parent, forest_depth, forest_rank)
    return walk[walk >= k] - k


def _depths(parent: np.ndarray) -> np.ndarray:
    """Depth of each node of a forest given by ``parent`` (-1: root); no cycles."""
    depth = np.zeros(parent.size, dtype=np.int64)
    at = parent.copy()
    active = np.flatnonzero(at >= 0)
    while active.size:
        depth[active] += 1
        at[active] = parent[at[active]]
        active = active[at[active] >= 0]
    return depth


def _break_cycles(members: np.ndarray, parent_name: np.ndarray) -> np.ndarray:
    """``parent_name`` (a name index per member, -1: none) with every member on or below
    a cycle made a root.

    Time nests, so a scope that holds most of another's time cannot also be mostly held
    by it, and ties go to "no parent": only a forged log (inconsistent times) can make a
    cycle. A member is on or below one if following parents does not reach a root within
    as many steps as there are members.
    """
    if members.size == 0:
        return parent_name
    position = np.full(int(members.max()) + 1, -1, dtype=np.int64)
    position[members] = np.arange(members.size)
    up = np.where(parent_name >= 0, position[np.maximum(parent_name, 0)], -1)
    active = np.flatnonzero(up >= 0)
    at = up[active]
    for _ in range(int(members.size)):
        if active.size == 0:
            return parent_name
        at = up[at]
        climbing = at >= 0
        active, at = active[climbing], at[climbing]
    out = parent_name.copy()
    out[active] = -1
    return out


def build_report(ev: Events, by: str | None = None) -> Report:
    """The report object of SPEC.md; ``by`` splits scope rows per process or thread."""
    if by not in (None, *BY_CHOICES):
        raise ValueError(f"by must be one of {BY_CHOICES}, not {by!r}")
    a = _Analysis(ev)
    processes: list[ProcessRow] = [
        {
            "pid": p["pid"],
            "name": p["name"],
            "host": p["host"],
            "rank": p["rank"],
            "records": p["records"],
            "warnings": list(p.get("warnings", [])),
            "dropped": int(p.get("dropped", 0)),
        }
        for p in ev.processes
    ]
    return {
        "liteprof_version": __version__,
        "sources": list(ev.sources),
        "records": ev.records,
        "skipped": ev.skipped,
        "wall_ns": ev.wall_ns,
        "scopes": a.scopes() if by is None else a.split_scopes(by),
        "groups": a.groups(),
        "processes": processes,
        "cross_process": a.cross_process(),
        "tree": a.tree(),
    }
