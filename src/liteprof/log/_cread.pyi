"""The reader's loops over every event, in C (see ``_cread.c``)."""

from typing import Any

def cut(
    slots: Any,
    start: Any,
    dur: Any,
    self_ns: Any,
    name: Any,
    depth: Any,
    error: Any,
    lane: Any,
    lane_now: int,
    anchor: int,
    /,
) -> tuple[int, int, int, int, int, int, int]: ...
def link(
    depth: Any, start: Any, dur: Any, stream: Any, order: Any, parent: Any, base: int, /
) -> None: ...
def sums(key: Any, values: Any, out: Any, /) -> None: ...
def select(key: Any, values: Any, counts: Any, ranks: Any, out: Any, scratch: Any, /) -> None: ...
def select_few(key: Any, values: Any, counts: Any, ranks: Any, out: Any, /) -> None: ...
def count(key: Any, out: Any, /) -> None: ...
