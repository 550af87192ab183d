"""Results: targets and their verdicts, the machine's description, the JSON file, and the
comparison with a previous run.

The JSON written by ``--json`` is ``{"info", "targets", "notes", "suites": {name: raw}}``;
``--previous`` reads only ``info.date`` and ``targets`` (key, value, verdict), so the JSON
of any earlier run, bench/run.py's included, compares.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass
from typing import Any


@dataclass
class Target:
    """A ratio with a limit: ``value op limit`` (``op`` is ``"<="`` or ``">="``).

    ``value`` ``None`` (or NaN) means not measured: the verdict is SKIP. ``key`` is stable
    from run to run (the previous-run table matches on it); ``label`` is for people.
    """

    key: str
    label: str
    value: float | None
    op: str
    limit: float
    detail: str = ""

    def __post_init__(self) -> None:
        if self.op not in ("<=", ">="):
            raise ValueError(f"target {self.key}: op must be '<=' or '>=', not {self.op!r}")
        if self.value is None or self.value != self.value:
            self.value = None
            self.detail = self.detail or "not measured"

    @property
    def verdict(self) -> str:
        """PASS, FAIL or SKIP."""
        if self.value is None:
            return "SKIP"
        ok = self.value <= self.limit if self.op == "<=" else self.value >= self.limit
        return "PASS" if ok else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (also what the Markdown and the console are drawn from)."""
        return {
            "key": self.key,
            "label": self.label,
            "value": self.value,
            "op": self.op,
            "limit": self.limit,
            "verdict": self.verdict,
            "detail": self.detail,
        }


def target_line(t: dict[str, Any]) -> str:
    """One console line for a target."""
    val = "n/a" if t["value"] is None else f"{t['value']:.2f}"
    return f"  {t['verdict']:<4}  {t['label']}: {val} ({t['op']} {t['limit']:g})" + (
        f"  [{t['detail']}]" if t["detail"] else ""
    )


def headline(res: dict[str, Any]) -> dict[str, tuple[float | None, str]]:
    """key -> (value, verdict) of a run's targets."""
    return {t["key"]: (t["value"], t["verdict"]) for t in res["targets"]}


def load(path: str) -> dict[str, Any]:
    """A run's JSON (``--previous``)."""
    with open(path) as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or not isinstance(data.get("targets"), list):
        raise ValueError(f"{path}: not the JSON of a benchmark run (no targets)")
    return data


def dump(res: dict[str, Any], path: str) -> None:
    """Write a run's JSON (``--json``)."""
    with open(path, "w") as fh:
        json.dump(res, fh, indent=1, default=str)


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, OS, Python and the load average now."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    mem = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_bytes": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
