"""vLLM's ``summarize_log``, re-implemented faithfully: the baseline of the text-log reader.

Source read (and re-written here, not copied): vllm-project/vllm,
``vllm/utils/lite_profiler/lite_profiler_report.py`` at commit
e94d0b18abf4e91d18dcb997ccae7ced74a3b434 (``_extract_event_us``, ``_sum_events``,
``_compute_table_rows``, ``summarize_log``). What it does, step for step:

- the log is opened as UTF-8 text (universal newlines: ``\\n``, ``\\r``, ``\\r\\n``) and
  read line by line; a line that is not valid UTF-8 raises (and ``summarize_log`` fails);
- each line is stripped (``str.strip``); an empty line is skipped;
- a line with a ``|`` is split at the *first* one into name and value; ``int(value)``
  (which accepts spaces, ``+``/``-``, ``_`` and non-ASCII digits) is appended to the
  name's list; a ``ValueError`` skips the line silently, as does a line without ``|``;
- the sums per name feed two tables: ``Step:Schedule``, ``Step:Model``, ``Step:Output``
  and ``Model:UpdateState``, ``Model:PrepareInput``, ``Model:Forward``,
  ``Model:Postprocess``, ``Model:Bookkeep``, each cell ``f"{s:.3f}s ({pct:.2f}%)"`` of the
  table's own total, and a ``TOTAL`` cell ``f"{s:.3f}s"``.

Standard library only; the tables are returned as text rather than logged.
"""

from __future__ import annotations

from collections import defaultdict

TOP_EVENTS = ("Step:Schedule", "Step:Model", "Step:Output")
MODEL_EVENTS = (
    "Model:UpdateState",
    "Model:PrepareInput",
    "Model:Forward",
    "Model:Postprocess",
    "Model:Bookkeep",
)


def extract_event_ns(path: str) -> dict[str, list[int]]:
    """Every scope's durations, as vLLM collects them."""
    durations: dict[str, list[int]] = defaultdict(list)
    with open(path, encoding="utf-8") as fh:
        for raw_line in fh:
            line = raw_line.strip()
            if not line:
                continue
            if "|" in line:
                try:
                    name, value = line.split("|", 1)
                    durations[name].append(int(value))
                except (ValueError, IndexError):
                    continue
    return durations


def _cell(value_ns: int, total_ns: int) -> str:
    seconds = value_ns / 1e9 if value_ns else 0.0
    percent = (value_ns * 100.0 / total_ns) if total_ns else 0.0
    return f"{seconds:.3f}s ({percent:.2f}%)"


def table_cells(sums: dict[str, int], events: tuple[str, ...]) -> list[str]:
    total = sum(sums.get(e, 0) for e in events)
    cells = [_cell(sums.get(e, 0), total) for e in events]
    cells.append(f"{(total / 1e9 if total else 0.0):.3f}s")
    return cells


def summarize_log(path: str) -> str:
    """What ``summarize_log`` computes for ``path``: its two tables, as text."""
    sums = {name: sum(values) for name, values in extract_event_ns(path).items()}
    lines = []
    for title, events in (
        ("Top-level pipeline events", TOP_EVENTS),
        ("Model events", MODEL_EVENTS),
    ):
        lines.append(title)
        lines.append(" | ".join(events + ("TOTAL",)))
        lines.append(" | ".join(table_cells(sums, events)))
    return "\n".join(lines)


if __name__ == "__main__":
    # ``python -m bench.vllm_summarize LOG``: the tables, as the textlog suite times them.
    import sys

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m bench.vllm_summarize LOG")
    print(summarize_log(sys.argv[1]))
