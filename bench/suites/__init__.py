"""The benchmark suites, by name, in the order they run and appear on the page.

A suite is one module here, ``bench/suites/<name>.py``, plus one line in ``SUITES``:

``NAME``
    its name (the file's stem): ``--suite NAME`` / ``--skip NAME``, its key in the JSON.
``TITLE``
    the heading of its section.
``NEEDS`` (optional)
    names of suites whose results it reads from ``ctx.results``; they run first.
``run(ctx) -> dict``
    measure; returns JSON-able raw results (``ctx``: :class:`bench.context.Context`:
    ``quick``, ``repeats``, ``tmpdir``, ``liteprof``, ``testing``, ``backends``,
    ``enable()``/``disable()``, ``run_child()``, ``results``, ``notes``).
``targets(results) -> list[Target]``
    the ratios it promises (:class:`bench.results.Target`: key, label, value, op, limit);
    printed PASS / FAIL / SKIP and tabled at the top of the page.
``markdown(results) -> list[str]``
    its section of docs/BENCHMARKS.md, starting with ``## TITLE``.
``summary(results) -> list[str]`` (optional)
    lines printed on the console at the end of the run.
``child(argv) -> dict`` (optional)
    what the suite's subprocesses run (``ctx.run_child(__name__, argv)``).

``targets``, ``markdown`` and ``summary`` take only ``results``, so a run's JSON can be
drawn again. Import only the standard library at a suite's top level (``liteprof`` comes
in ``ctx``; peers and asyncio inside ``run``): the never-enabled child reports what its
process imported, and ``python -m bench --help`` should not need numpy.
"""

from __future__ import annotations

from types import ModuleType

from . import (
    asyncio,
    cli,
    export,
    files,
    hotpath,
    html,
    live,
    names,
    never,
    reader,
    startup,
    tasks,
    textlog,
    threads,
)

SUITES: dict[str, ModuleType] = {
    m.NAME: m
    for m in (
        never,
        hotpath,
        asyncio,
        tasks,
        threads,
        reader,
        names,
        export,
        startup,
        html,
        cli,
        live,
        files,
        textlog,
    )
}

for _name, _module in SUITES.items():
    assert _module.__name__ == f"{__name__}.{_name}", (_name, _module.__name__)
del _name, _module
