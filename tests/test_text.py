"""vLLM lite-profiler text logs: read as vLLM's own ``summarize_log`` reads them, damage
skipped and counted, binary files refused.

The oracle is ``bench/vllm_summarize.py``, a faithful re-implementation of vLLM's
``_extract_event_us`` (see its docstring for the source and commit).
"""

from __future__ import annotations

import gzip
import os
import random
import sys
from typing import Any

import numpy as np
import pytest
from bench.vllm_summarize import extract_event_ns

from liteprof.log import text as text_mod
from liteprof.log.errors import LogError
from liteprof.log.events import Events
from liteprof.log.reader import read_logs

from .faultkit import check_reader_outcome, run_reader


@pytest.fixture(autouse=True, params=["c", "numpy"] if text_mod._ctext is not None else ["numpy"])
def text_loops(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test twice: chunks of usual lines read by the C loop (``log/_ctext.c``, where
    it is built), and every chunk read with numpy (an install without a compiler)."""
    if request.param == "numpy":
        monkeypatch.setattr(text_mod, "_ctext", None)
    return str(request.param)


VLLM_NAMES = [
    "Step:Schedule",
    "Step:Model",
    "Model:UpdateState",
    "Model:PrepareInput",
    "Model:Forward",
    "Model:Postprocess",
    "Model:Bookkeep",
    "Step:Output",
]


def _write(tmp_path: Any, data: bytes, name: str = "vllm.log") -> str:
    path = os.path.join(os.fspath(tmp_path), name)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _totals(ev: Events) -> dict[str, tuple[int, int]]:
    """Per name: (count, total ns)."""
    out: dict[str, tuple[int, int]] = {}
    for i, name in enumerate(ev.names):
        durs = ev.dur[ev.name == i]
        if durs.size:
            out[name] = (int(durs.size), sum(durs.tolist()))  # exact, no int64 wrap
    return out


def _vllm_totals(path: str) -> dict[str, tuple[int, int]]:
    return {k: (len(v), sum(v)) for k, v in extract_event_ns(path).items() if v}


def _log_lines(rng: random.Random, count: int) -> list[str]:
    return [
        f"{VLLM_NAMES[i % 8]}|{rng.randrange(1, 10 ** rng.randrange(1, 12))}" for i in range(count)
    ]


# Lines that vLLM and liteprof read alike, whitespace cases first.
AGREED = [
    "Step:Model|1000",
    "   Step:Model|5",  # spaces before the name are not part of it
    "\tModel:Forward|7",
    "\u3000Model:Forward|9",  # Unicode whitespace too (str.strip)
    "\xa0 Step:Output|11",
    "Step:Model |13",  # ...but spaces between the name and "|" are
    "Step:Model|  17  ",  # spaces around the value
    "Step:Model|19\t",
    "Step:Model|+23",  # int() accepts a sign...
    "Step:Model|1_000",  # ...underscores...
    "Step:Model|\u0663\u0664",  # ...and non-ASCII digits (34)
    "Step:Model|29\u3000",
    "",
    "    ",
    "\t \x0b\x0c",
    "\u3000",  # blank to str.strip too: ignored, not skipped
    " \xa0\u2003\x85 ",
    "\u3000x",  # ...unlike a line with something else
    "|31",  # an empty name
    "no separator here",
    "Step:Model|",
    "Step:Model|x1",
    "Step:Model|1 2",
    "Step:Model|0",
    "Step:Model|000123",
    "Step:Model|" + "9" * 18,
    "Step:Model|" + "9" * 16,
    "Step:Model|9223372036854775807",  # 2**63 - 1: the largest
    "a" * 7 + "|1",
    "b" * 8 + "|1",
    "c" * 9 + "|1",
    "d" * 16 + "|1",
    "e" * 17 + "|1",
    "f" * 24 + "|1",
    "g" * 25 + "|1",
    "h" * 300 + "|1",
    "i" * 5000 + "|1",  # longer than the vectorised name matching
    "Ünïcödé ✓ name|41",
    "日本語のスコープ|43",
    "name with spaces inside|47",
    "with\x1btab\tand escape|53",
]


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_lines_read_as_vllm_reads_them(tmp_path: Any, ending: str) -> None:
    rng = random.Random(5)
    lines = AGREED * 3 + _log_lines(rng, 2000)
    rng.shuffle(lines)
    path = _write(tmp_path, ending.join(lines).encode("utf-8"))
    ev = read_logs([path])
    assert _totals(ev) == _vllm_totals(path)
    non_blank = [line for line in lines if line.strip()]
    assert ev.records + ev.skipped == len(non_blank)
    assert ev.self_ns.tolist() == ev.dur.tolist()
    assert ev.wall_ns is None and ev.processes == []


def test_where_liteprof_differs_from_vllm_it_skips_and_counts(tmp_path: Any) -> None:
    lines = [
        "Step:Model|10",
        "a|b|5",  # vLLM splits at the first "|" (and skips); liteprof at the last
        "Step:Model|-5",  # a negative time: vLLM adds it; liteprof skips it
        "Step:Model|9223372036854775808",  # 2**63: beyond a duration
        "Step:Model|\x00\x00",  # a NUL: damage
    ]
    path = _write(tmp_path, "\n".join(lines).encode())
    ev = read_logs([path])
    assert _totals(ev) == {"Step:Model": (1, 10), "a|b": (1, 5)}
    assert ev.skipped == 3


@pytest.mark.parametrize("zeros", [1, 100, 4096, 3 << 20])
def test_a_zero_filled_tail_is_one_skipped_record(tmp_path: Any, zeros: int) -> None:
    lines = _log_lines(random.Random(1), 500)
    good = ("\n".join(lines) + "\n").encode()
    path = _write(tmp_path, good + bytes(zeros))
    ev = read_logs([path])
    assert (ev.records, ev.skipped) == (500, 1)
    report = check_reader_outcome(run_reader(path))
    assert report is not None and (report["records"], report["skipped"]) == (500, 1)


def test_a_crash_cut_inside_a_line_then_zeros(tmp_path: Any) -> None:
    good = "".join(line + "\n" for line in _log_lines(random.Random(2), 300)).encode()
    path = _write(tmp_path, good[:-7] + bytes(8192))  # the last line torn, then zeros
    ev = read_logs([path])
    assert (ev.records, ev.skipped) == (299, 1)


@pytest.mark.parametrize("seed", range(6))
def test_nul_runs_anywhere_are_skipped_line_by_line(tmp_path: Any, seed: int) -> None:
    rng = random.Random(seed)
    data = bytearray("".join(line + "\n" for line in _log_lines(rng, 20_000)).encode())
    for _ in range(rng.randrange(1, 12)):
        # Whole pages zeroed (what a crash leaves), or any stretch.
        if rng.random() < 0.5:
            start, size = rng.randrange(len(data) // 4096) * 4096, 4096 * rng.randrange(1, 3)
        else:
            start, size = rng.randrange(len(data)), rng.randrange(1, 300)
        data[start : start + size] = bytes(len(data[start : start + size]))
    path = _write(tmp_path, bytes(data))
    ev = read_logs([path])
    lines = [line for line in bytes(data).split(b"\n") if line]
    damaged = [line for line in lines if b"\0" in line]
    clean = _write(tmp_path, b"\n".join(line for line in lines if b"\0" not in line), "clean")
    assert ev.skipped == len(damaged) > 0
    assert _totals(ev) == _vllm_totals(clean)


@pytest.mark.parametrize("chunk", [64, 1000, 4096])
def test_lines_across_read_boundaries(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    rng = random.Random(chunk)
    lines = AGREED + _log_lines(rng, 3000) + ["x" * 2000 + "|3"]
    rng.shuffle(lines)
    path = _write(tmp_path, "\n".join(lines).encode())
    expected = _totals(read_logs([path]))
    monkeypatch.setattr(text_mod, "_CHUNK", chunk)
    monkeypatch.setattr(text_mod, "_MAX_LINE", 8192)
    assert _totals(read_logs([path])) == expected == _vllm_totals(path)


def test_a_line_longer_than_a_read_is_one_skipped(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text_mod, "_CHUNK", 4096)
    monkeypatch.setattr(text_mod, "_MAX_LINE", 10_000)
    data = b"A|1\n" + b"y" * 50_000 + b"|5\n" + b"B|2\n" + bytes(60_000) + b"\nC|3"
    ev = read_logs([_write(tmp_path, data)])
    assert _totals(ev) == {"A": (1, 1), "B": (1, 2), "C": (1, 3)}
    assert ev.skipped == 2


def test_names_that_defeat_the_hash_table_are_grouped_exactly(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(9)
    names = [f"name-{i}-" + "z" * rng.randrange(0, 40) for i in range(3000)]
    lines = [f"{rng.choice(names)}|{rng.randrange(10**6)}" for _ in range(30_000)]
    path = _write(tmp_path, "\n".join(lines).encode())
    expected = _vllm_totals(path)
    assert _totals(read_logs([path])) == expected
    monkeypatch.setattr(text_mod, "_HASH_ROUNDS", 0)  # every line to the exact fallback
    assert _totals(read_logs([path])) == expected


def test_a_name_that_is_not_utf8_is_skipped(tmp_path: Any) -> None:
    ev = read_logs([_write(tmp_path, b"A|1\n\xff\xfe|2\nB\xc3|3\nC|4\n")])
    assert _totals(ev) == {"A": (1, 1), "C": (1, 4)}
    assert ev.skipped == 2


def test_only_blank_lines_is_an_empty_log(tmp_path: Any) -> None:
    ev = read_logs([_write(tmp_path, b"\n\n  \n\r\n\t\n")])
    assert (ev.records, ev.skipped) == (0, 0)


def _binaries(tmp_path: Any) -> dict[str, bytes]:
    rng = random.Random(4)
    log = "\n".join(_log_lines(rng, 5000)).encode()
    with open(sys.executable, "rb") as fh:
        elf = fh.read(1 << 20)
    return {
        "the python executable": elf,
        "random bytes": rng.randbytes(300_000),
        "a gzipped text log": gzip.compress(log),
        "a PNG header and noise": b"\x89PNG\r\n\x1a\n" + rng.randbytes(20_000),
        "text without separators": b"hello world\n" * 5000,
    }


def test_a_binary_file_that_is_neither_format_is_an_error(tmp_path: Any) -> None:
    for label, data in _binaries(tmp_path).items():
        path = _write(tmp_path, data, label.replace(" ", "_"))
        with pytest.raises(LogError, match="not a liteprof log or a vLLM"):
            read_logs([path])
        proc = run_reader(path)
        assert check_reader_outcome(proc) is None, label


def test_a_text_log_of_millions_of_lines_uses_less_memory_than_its_size(tmp_path: Any) -> None:
    # 12 B per line in the columns (name, duration; self time is the duration itself).
    path = _write(tmp_path, ("".join(f"S:{i % 7}|{i}\n" for i in range(2_000_000))).encode())
    ev = read_logs([path])
    assert ev.records == 2_000_000 and ev.self_ns is ev.dur
    owned = sum(getattr(col.base, "nbytes", 0) for col in (ev.name, ev.dur))
    # The reservation is estimated from the first chunk (whose lines are the shortest here).
    assert owned <= 1.5 * 12 * 2_000_000
    assert np.shares_memory(ev.self_ns, ev.dur)


def test_chunks_the_c_loop_takes_read_as_numpy_reads_them(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, text_loops: str
) -> None:
    rng = random.Random(11)
    usual = [
        "",  # blank lines between usual ones
        "   Step:Model|5",  # whitespace before the name: stripped when it is interned
        "|7",
        "Step:Model|000123",
        "Step:Model|" + "9" * 18,
        "Ünïcödé ✓ name|41",
        "x" * 300 + "|3",
    ]
    rare = [
        "Step:Model| 17 ",
        "Step:Model|\u0663\u0664",
        "   ",
        "Step:Model|2\r",
    ]
    damage = ["Step:Model|" + "9" * 19, "no separator", "Step:Model|1\x00"]
    lines = _log_lines(rng, 20_000)
    for _ in range(400):
        lines.insert(rng.randrange(len(lines)), rng.choice(usual))
    for bad in rare + damage:
        lines.insert(rng.randrange(len(lines)), bad)
    data = "\n".join(lines).encode()  # no line end after the last line
    bad_name = b"\xff\xfeStep:Model|9"  # a name that is not UTF-8, near the end
    path = _write(tmp_path, data + b"\n" + bad_name + b"\nStep:Model|4")
    # What vLLM reads, without the lines it would crash on or add up (liteprof skips them).
    clean = [line for line in lines if line not in damage[::2]]
    oracle = _write(tmp_path, "\n".join([*clean, "Step:Model|4"]).encode(), "oracle")
    monkeypatch.setattr(text_mod, "_CHUNK", 4096)
    monkeypatch.setattr(text_mod, "_MAX_LINE", 8192)
    taken = []
    if text_loops == "c":
        c_lines = text_mod._ctext.lines

        def counting(*args: Any) -> Any:
            got = c_lines(*args)
            taken.append(got is not None)
            return got

        monkeypatch.setattr(text_mod._ctext, "lines", counting)
    ev = read_logs([path])
    assert _totals(ev) == _vllm_totals(oracle)
    assert ev.skipped == len(damage) + 1
    if text_loops == "c":
        # Most chunks are the C loop's; those with a rare line or damage are numpy's.
        assert sum(taken) > 0.5 * len(taken) and not all(taken)
        monkeypatch.setattr(text_mod, "_ctext", None)
        by_numpy = read_logs([path])
        assert ev.names == by_numpy.names  # interned in the same (file) order
        assert ev.name.tolist() == by_numpy.name.tolist()
        assert ev.dur.tolist() == by_numpy.dur.tolist()


@pytest.mark.parametrize(
    "data",
    [
        b"|7\nA|1\nBB|22\n",  # lines shorter than a word at the start of the buffer
        b"7|1\n",
        b"A|" + b"1" * 17 + b"\nA|" + b"2" * 18 + b"\nA|" + b"3" * 9 + b"\nA|" + b"4" * 16,
        b"A|99999999\nA|0\nA|00000000000000001\n\nB|12345678901234\n",
        b"".join(b"N%d|%d\n" % (i % 5, 10**i) for i in range(18)),
    ],
)
def test_short_lines_and_long_values(tmp_path: Any, data: bytes) -> None:
    path = _write(tmp_path, data)
    ev = read_logs([path])
    assert _totals(ev) == _vllm_totals(path)
    assert ev.skipped == 0


@pytest.mark.parametrize("garbage", ["random bytes", "an ELF header", "zeros then random"])
def test_damage_after_a_good_first_line_is_never_a_refusal(tmp_path: Any, garbage: str) -> None:
    rng = random.Random(3)
    head = "".join(line + "\n" for line in _log_lines(rng, 200)).encode()
    tail = "".join(line + "\n" for line in _log_lines(rng, 200)).encode()
    noise = rng.randbytes(len(head) * 60)  # far more control bytes than good ones
    if garbage == "an ELF header":
        with open(sys.executable, "rb") as fh:
            noise = fh.read(len(head) * 60)
    elif garbage == "zeros then random":
        noise = bytes(8192) + noise
    path = _write(tmp_path, b"\n\n" + head + noise + b"\n" + tail)
    ev = read_logs([path])
    expected = _vllm_totals(_write(tmp_path, head + tail, "clean"))
    assert {k: v for k, v in _totals(ev).items() if k in expected} == expected
    assert ev.skipped > 0
    report = check_reader_outcome(run_reader(path))
    assert report is not None and report["skipped"] == ev.skipped
