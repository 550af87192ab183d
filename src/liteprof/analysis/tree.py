"""The call tree: one node per distinct path of nested scopes.

An event's node is its parent event's node and its own name: ``(parent node, name)``.
Events are taken one nesting level at a time, outermost first, so that a parent's node is
known before its children's; each level numbers its distinct ``(parent node, name)`` pairs
with one vectorised pass (a lookup table when the pairs are few, ``np.unique`` when they
are many). No Python loop runs per event, and per node only while writing paths.

An event whose ``parent`` is -1 (a root, an event of a vLLM text log, or one whose parent
was lost) starts a path of its own. The order of the report's ``tree`` is depth first,
children by total descending (ties: the name that appeared first), by ``preorder``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..log.events import Events
from .stats import counts_by_key

_FEW_LEVELS = 16  # up to this depth, a mask per level; deeper, one sort by depth


@dataclass
class Nodes:
    """The nodes of a call tree, and each event's node."""

    of_event: np.ndarray
    """Per event: its node (int32, or int64 beyond 2**31 events)."""
    name: np.ndarray
    """Per node: index into ``Events.names``."""
    parent: np.ndarray
    """Per node: the parent node, -1 for a root."""
    depth: np.ndarray
    """Per node: the number of nodes above it (0 for a root)."""

    @property
    def size(self) -> int:
        return int(self.name.size)


def _number_pairs(key: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of ``key`` (in ``[0, span)``), ascending, and each key's number
    among them."""
    if span <= 4 * key.size + 65536:
        if span <= key.size:
            # Counts (8 bytes a key, less than the 64-bit copy of 32-bit keys that a mask
            # set by fancy indexing makes first)
            distinct = np.flatnonzero(counts_by_key(key, span))
        else:
            seen = np.zeros(span, dtype=bool)
            seen[key] = True
            distinct = np.flatnonzero(seen)
            del seen
        if distinct.size == span:  # every key occurs: each is its own number
            return distinct, key
        lut = np.empty(span, dtype=key.dtype)
        lut[distinct] = np.arange(distinct.size, dtype=key.dtype)
        return distinct, lut[key]
    distinct, inverse = np.unique(key, return_inverse=True)
    return distinct, inverse.reshape(-1)


def _rows_by_depth(depth: np.ndarray, linked: np.ndarray) -> list[np.ndarray]:
    """Rows of the linked events at each depth 1, 2, ... (index d-1), ascending."""
    top = int(depth.max()) if depth.size else 0
    if top <= 0:
        return []
    if top <= _FEW_LEVELS:
        return [np.flatnonzero(linked & (depth == d)) for d in range(1, top + 1)]
    rows = np.flatnonzero(linked)
    d = depth[rows]
    order = np.argsort(d.astype(np.uint16) if top < 1 << 16 else d, kind="stable")
    rows = rows[order]
    bounds = np.cumsum(np.bincount(d, minlength=top + 1))
    return [rows[bounds[k - 1] : bounds[k]] for k in range(1, top + 1)]


def build_nodes(ev: Events) -> Nodes:
    """Every event's node of the call tree."""
    n = ev.records
    n_names = max(1, len(ev.names))
    # int32 ids halve the memory traffic; int64 only for logs beyond 2**31 events.
    idx = np.int32 if max(n, n_names) < 1 << 31 else np.int64
    name = ev.name.astype(idx, copy=False)
    parent, depth = ev.parent, ev.depth
    if n and parent.strides == (0,) and int(parent[0]) < 0:
        # No event has a parent (a vLLM text log: one value for every row, not a column
        # in memory): every event is a root, its node its name's.
        names, node = _number_pairs(name, n_names)
        return Nodes(
            of_event=node,
            name=names.astype(np.int64),
            parent=np.full(names.size, -1, dtype=np.int64),
            depth=np.zeros(names.size, dtype=np.int64),
        )
    node = np.full(n, -1, dtype=idx)
    # Events are taken outermost first; an event whose parent is not a row, or was not
    # numbered before it (a hand-made column whose depths disagree), starts a path.
    below = depth > 0
    linked = parent >= 0
    if n and int(parent.max()) >= n:
        linked &= parent < n
    linked &= below
    # An event that starts a path below depth 0 (its parent never closed: a crash, a
    # damaged log) can repeat, at another depth, a path that others reach: merged below.
    merge = int(np.count_nonzero(below)) != int(np.count_nonzero(linked))
    del below
    roots = np.flatnonzero(~linked)
    names, node[roots] = _number_pairs(name[roots], n_names)
    del roots
    node_name = [names]
    node_parent = [np.full(names.size, -1, dtype=np.int64)]
    node_depth = np.zeros(names.size, dtype=np.int64)  # grown by doubling below
    n_nodes = int(names.size)
    root_of_name = np.full(n_names, -1, dtype=np.int64)
    root_of_name[names] = np.arange(names.size)
    for rows in _rows_by_depth(depth, linked):
        if rows.size == 0:
            continue
        up = node[parent[rows]]
        if int(up.min()) < 0:
            # Parents not numbered yet: these start paths of their own after all.
            bad = up < 0
            merge = True
            late = rows[bad]
            rows, up = rows[~bad], up[~bad]
            missing = np.unique(name[late][root_of_name[name[late]] < 0])
            root_of_name[missing] = n_nodes + np.arange(missing.size)
            node_name.append(missing.astype(np.int64))
            node_parent.append(np.full(missing.size, -1, dtype=np.int64))
            if n_nodes + missing.size > node_depth.size:
                node_depth = np.concatenate(
                    (node_depth, np.zeros(n_nodes + missing.size, np.int64))
                )
            node_depth[n_nodes : n_nodes + missing.size] = 0
            n_nodes += int(missing.size)
            node[late] = root_of_name[name[late]]
            if rows.size == 0:
                continue
        # Parents of this level are nodes made so far; number the (parent, name) pairs
        # relative to the lowest of them so that the lookup table stays small.
        lo = int(up.min())
        span = (n_nodes - lo) * n_names
        if span < 1 << 31 or (idx is np.int64 and span < 1 << 62):
            key = up - lo
            key *= n_names
            key += name[rows]
            pairs, numbers = _number_pairs(key, span)
            del key
            made_parent = pairs // n_names + lo
            made_name = pairs % n_names
        else:  # more pairs than one integer can number: unique rows instead
            uniq, numbers = np.unique(
                np.stack((up.astype(np.int64), name[rows].astype(np.int64)), axis=1),
                axis=0,
                return_inverse=True,
            )
            made_parent, made_name = uniq[:, 0], uniq[:, 1]
        node[rows] = numbers.reshape(-1) + n_nodes
        del numbers, up
        node_name.append(made_name)
        node_parent.append(made_parent.astype(np.int64))
        made = int(made_name.size)
        if n_nodes + made > node_depth.size:
            grown = np.zeros(max(2 * node_depth.size, n_nodes + made), np.int64)
            grown[:n_nodes] = node_depth[:n_nodes]
            node_depth = grown
        node_depth[n_nodes : n_nodes + made] = node_depth[made_parent] + 1
        n_nodes += made

    def joined(parts: list[np.ndarray]) -> np.ndarray:
        return parts[0].astype(np.int64, copy=False) if len(parts) == 1 else np.concatenate(parts)

    nodes = Nodes(
        of_event=node,
        name=joined(node_name),
        parent=joined(node_parent),
        depth=node_depth if node_depth.size == n_nodes else node_depth[:n_nodes].copy(),
    )
    return _merge_repeats(nodes, n_names) if merge else nodes


def _merge_repeats(nodes: Nodes, n_names: int) -> Nodes:
    """The same nodes with repeated paths made one: top-down, a node is the first one
    of its (parent, name), parents taken after their own merge. Per node, not event."""
    n = nodes.size
    same = np.arange(n, dtype=np.int64)
    by_depth = np.argsort(nodes.depth, kind="stable")
    bounds = np.cumsum(np.bincount(nodes.depth))
    for lo, hi in zip(np.r_[0, bounds[:-1]].tolist(), bounds.tolist()):
        level = by_depth[lo:hi]
        up = nodes.parent[level]
        key = (np.where(up >= 0, same[np.maximum(up, 0)], -1) + 1) * n_names + nodes.name[level]
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        same[level] = level[first][inverse.reshape(-1)]
    kept = same == np.arange(n)
    new_id = np.cumsum(kept) - 1
    final = new_id[same]
    parent = nodes.parent[kept]
    return Nodes(
        of_event=final[nodes.of_event].astype(nodes.of_event.dtype),
        name=nodes.name[kept],
        parent=np.where(parent >= 0, final[np.maximum(parent, 0)], -1),
        depth=nodes.depth[kept],
    )


def preorder(parent: np.ndarray, depth: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """The depth-first order of a forest: the nodes in the order a walk meets them, each
    node's children ordered by ``rank`` (ascending; unique per node).

    ``parent[i]`` is -1 for a root and ``depth[i]`` is ``depth[parent[i]] + 1``. Subtree
    sizes are summed bottom-up and positions handed down, one level at a time.
    """
    n = int(parent.size)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    top = int(depth.max())
    if top == 0:
        return np.argsort(rank, kind="stable")
    by_level = np.argsort(depth, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(depth, minlength=top + 1))))
    size = np.ones(n, dtype=np.int64)
    for d in range(top, 0, -1):
        level = by_level[bounds[d] : bounds[d + 1]]
        np.add.at(size, parent[level], size[level])
    position = np.zeros(n, dtype=np.int64)
    for d in range(top + 1):
        level = by_level[bounds[d] : bounds[d + 1]]
        # Siblings together, each family in rank order: one sort of (parent, rank).
        level = level[np.argsort((parent[level] + 1) * n + rank[level])]
        up = parent[level]
        before = np.cumsum(size[level]) - size[level]  # sizes of the earlier nodes
        first = np.flatnonzero(np.r_[True, up[1:] != up[:-1]])
        family_start = np.repeat(before[first], np.diff(np.r_[first, level.size]))
        offset = before - family_start
        position[level] = offset if d == 0 else position[up] + 1 + offset
    order = np.empty(n, dtype=np.int64)
    order[position] = np.arange(n, dtype=np.int64)
    return order


def nearest_above(
    parent: np.ndarray, label: np.ndarray, wanted: np.ndarray, among: np.ndarray
) -> np.ndarray:
    """For each node of ``among``, the nearest node above it (parent, grandparent, ...)
    whose ``label`` equals the node's ``wanted`` label; -1 where there is none.

    All those nodes climb together, one step per round; a node leaves once found or at
    its root, so the work is the total length of the climbs.
    """
    found = np.full(among.size, -1, dtype=np.int64)
    here = parent[among]
    if among.size == 0 or int(here.max()) < 0:  # only roots: nothing above
        return found
    active = np.arange(among.size, dtype=np.int64)
    want = wanted[among]
    while active.size:
        alive = here >= 0
        active, here = active[alive], here[alive]
        hit = label[here] == want[active]
        found[active[hit]] = here[hit]
        active, here = active[~hit], here[~hit]
        here = parent[here]
    return found
