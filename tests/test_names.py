"""Names: any ``str`` round-trips through every output format; a non-str name costs only its
own event (one warning per process), never an exception in the program.

Extends ``test_recording.py::test_any_str_name_round_trips`` (in-process reader) and
``test_cli.py::test_names_are_escaped_so_a_row_stays_one_row`` (six names, text formats)
with names no encoding accepts (lone surrogates), control and terminal-escape characters,
Unicode line separators, names that differ only by an escape, odd thread names, and stdout
encodings other than the default.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import liteprof

from .helpers import child_env, read, run_python, scopes_by_name

pytestmark = pytest.mark.usefixtures("backend")  # every test here records

NAMES = [
    "a|b",
    "line\nbreak",
    "cr\rreturn",
    "crlf\r\n",
    "tab\there",
    "ünïcødé ✓",
    "",
    " ",
    "x" * 10_000,
    "<b>html</b> &amp; <script>",
    "lone \udc80 low",
    "lone \ud800 high",
    "emoji 😀",
    "nul\x00byte",
    "esc \x1b[31mred\x1b[0m",
    "bell\x07",
    "del\x7f",
    "nel\x85",
    "ls\u2028ps\u2029",
    "rtl \u202egnp.exe",
    "back\\slash",
    "a\\nb",
    "`code` **bold**",
    "Group:with:colons",
    ":",
    "Group:",
]

RECORD = f"""
import threading, liteprof
NAMES = {NAMES!r}
for n in NAMES:
    with liteprof.scope(n):
        pass
def work():
    with liteprof.scope("in thread"):
        pass
t = threading.Thread(target=work, name="t|\\n<b>\\ud800")
t.start(); t.join()
"""


def _report(logdir: str, fmt: str, *extra: str, **env: str | None) -> bytes:
    proc = subprocess.run(
        [sys.executable, "-m", "liteprof", "report", logdir, "--format", fmt, *extra],
        env=child_env(**env),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert not proc.stderr
    return proc.stdout


@pytest.fixture
def recorded(logdir: str) -> str:
    run_python(RECORD, LITEPROF_LOG=logdir)
    return logdir


@pytest.mark.parametrize("encoding", [None, "utf-8", "utf-8:surrogateescape", "ascii", "latin-1"])
def test_json_round_trips_every_name_whatever_stdout_encoding(
    recorded: str, encoding: str | None
) -> None:
    raw = _report(recorded, "json", PYTHONIOENCODING=encoding, LC_ALL=None, LANG=None)
    report = json.loads(raw.decode("utf-8"))  # always valid UTF-8 (ASCII where it must be)
    names = sorted(r["name"] for r in report["scopes"])
    assert names == sorted([*NAMES, "in thread"])


def test_surrogate_pair_round_trips_in_process(logdir: str) -> None:
    """Two lone surrogates that form a pair are a different ``str`` from the character they
    would pair into; the reader keeps them apart. (JSON cannot: its ``\\ud83d\\ude00``
    escape *is* U+1F600, so ``--format json`` shows both the same way.)"""
    names = ["pair \ud83d\ude00", "pair \U0001f600", "\udfff\ud800"]
    liteprof.enable(logdir)
    for n in names:
        with liteprof.scope(n):
            pass
    liteprof.disable()
    assert sorted(scopes_by_name(read(logdir))) == sorted(names)


def test_text_formats_keep_one_row_per_scope_and_names_distinct(recorded: str) -> None:
    n = len(NAMES) + 1
    rows = list(csv.reader(io.StringIO(_report(recorded, "csv").decode("utf-8"))))
    assert len(rows) == 1 + n
    assert all(len(r) == len(rows[0]) for r in rows)
    assert len({r[0] for r in rows[1:]}) == n  # "a\nb" and "a\\nb" stay two names
    for r in rows[1:]:
        assert not any(ch in r[0] for ch in "\n\r\x00\x1b\x85\u2028\u2029\ud800\udc80")

    md = _report(recorded, "markdown").decode("utf-8")
    scopes = md.split("## Scopes")[1].split("\n## ")[0]
    lines = [ln for ln in scopes.strip().splitlines() if ln.startswith("|")]
    assert len(lines) == 2 + n  # header, rule, one per scope
    cells = [len(re.findall(r"(?<!\\)\|", ln)) for ln in lines]  # unescaped pipes
    assert cells == [cells[0]] * len(lines)
    assert "<script>" not in md and "<b>" not in md and "\x1b" not in md

    table = _report(recorded, "table").decode("utf-8")
    block = table.split("\n\n")[1].splitlines()
    assert len(block) == 3 + n  # title, header, rule, one per scope
    assert "\x1b" not in table and "\r" not in table and "\x00" not in table

    by_thread = list(
        csv.reader(io.StringIO(_report(recorded, "csv", "--by", "thread").decode("utf-8")))
    )
    assert len(by_thread) == 1 + n
    threads = {r[-1] for r in by_thread[1:]}
    assert "t|\\n<b>\\ud800" in threads


def test_names_survive_in_every_text_format_under_ascii_stdout(recorded: str) -> None:
    for fmt in ("csv", "markdown", "table"):
        out = _report(recorded, fmt, PYTHONIOENCODING="ascii")
        out.decode("ascii")  # nothing that the stream could not take


BAD_NAMES = [123, b"bytes", None, 1.5, ["unhashable"], {"a": 1}, object()]


def _use_name(usage: str, bad: Any) -> int:
    if usage == "with":
        with liteprof.scope(bad):
            return 42

    @liteprof.scope(bad)
    def f() -> int:
        return 42

    f()
    return f()


@pytest.fixture
def warn_again(backend: str) -> Iterator[None]:
    """A bad name is reported once per process: let this test see its own warning."""
    from liteprof.record import backend as chosen

    forget: Any = getattr(chosen.current, "_forget_warnings", None)
    if forget is not None:
        forget()
    yield


@pytest.mark.parametrize("usage", ["with", "decorator"])
@pytest.mark.parametrize("bad", BAD_NAMES, ids=lambda v: type(v).__name__)
def test_non_str_name_costs_only_that_event(
    logdir: str,
    backend: str,
    usage: str,
    bad: Any,
    caplog: pytest.LogCaptureFixture,
    warn_again: None,
) -> None:
    caplog.set_level(logging.WARNING, logger="liteprof")
    liteprof.enable(logdir)
    try:
        with liteprof.scope("Before"):
            pass
        result = _use_name(usage, bad)
        for _ in range(3):  # the program runs on, and so does recording
            with liteprof.scope("After"):
                pass
        _use_name(usage, bad)  # a second bad name: no second warning
        still_on = liteprof.enabled()
    finally:
        liteprof.disable()  # also when the backend raised: leave nothing switched on
    assert result == 42
    assert still_on
    warnings = [r for r in caplog.records if r.name == "liteprof"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "must be str" in warnings[0].getMessage()
    rows = scopes_by_name(read(logdir))
    assert {n: r["count"] for n, r in rows.items()} == {"Before": 1, "After": 3}


def test_non_str_name_in_a_child_warns_once_on_stderr(logdir: str) -> None:
    proc = run_python(
        """
        import liteprof
        total = 0
        for i in range(1000):
            with liteprof.scope(i if i % 100 == 50 else "Loop:Step"):
                total += i
        print(total, liteprof.enabled())
        """,
        LITEPROF_LOG=logdir,
    )
    assert proc.stdout.split() == [str(sum(range(1000))), "True"]
    assert proc.stderr.count("must be str") == 1, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert scopes_by_name(read(logdir))["Loop:Step"]["count"] == 990


def test_scope_object_checks_its_name_at_construction_whether_or_not_recording(
    logdir: str,
) -> None:
    """``Scope(name)`` is made once, usually at import: a non-str name is a TypeError there,
    the same with recording on or off, so it never appears only because liteprof records."""
    for on in (False, True):
        if on:
            liteprof.enable(logdir)
        with pytest.raises(TypeError):
            liteprof.Scope(123)  # type: ignore[arg-type]
    liteprof.disable()
    assert not os.path.exists(logdir) or not os.listdir(logdir)
