"""Helpers for tests that drive liteprof as a user would: child processes and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from liteprof.analysis.types import Report


def child_env(**extra: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_python(
    code: str, *, timeout: float = 60, check: bool = True, **env: str | None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a script file in a fresh interpreter with extra environment variables.

    A file rather than ``-c``: spawn and forkserver children re-import ``__main__``.
    Wrappers that forward their own ``**env`` pass ``timeout`` and ``check`` by name, so
    that no environment variable can be taken for either (mypy checks that).
    """
    with tempfile.TemporaryDirectory(prefix="liteprof-test-") as tmp:
        script = os.path.join(tmp, "child_main.py")
        with open(script, "w") as fh:
            fh.write(textwrap.dedent(code))
        proc = subprocess.run(
            [sys.executable, script],
            env=child_env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"child failed ({proc.returncode}):\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def cli(*args: str, timeout: float = 120, **env: str | None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m liteprof ARGS``."""
    return subprocess.run(
        [sys.executable, "-m", "liteprof", *args],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def report_json(*paths: str, by: str | None = None) -> dict[str, Any]:
    args = ["report", *paths, "--format", "json"]
    if by:
        args += ["--by", by]
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def read(*paths: str, by: str | None = None) -> Report:
    """The JSON report, built in this process (faster than the CLI)."""
    from liteprof.analysis.report import build_report
    from liteprof.log.reader import read_logs

    return build_report(read_logs(list(paths)), by=by)


def scopes_by_name(report: Report | dict[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Each scope row by name, from ``read()``'s report or the CLI's JSON alike."""
    return {row["name"]: row for row in report["scopes"]}


def log_files(directory: str) -> list[str]:
    if not os.path.isdir(directory):
        return []
    return sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".lpf"))
