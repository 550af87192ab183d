"""Subprocesses of a benchmark run: ``python -m bench.child MODULE ARG...``.

The child imports ``MODULE`` (a suite, say ``bench.suites.never``), calls its
``child(argv) -> dict`` and prints the dict as JSON on its last stdout line; the parent's
``run_child()`` returns that dict. The child's environment has no ``LITEPROF_LOG``,
``LITEPROF_PROCESSES`` or ``LITEPROF_PURE`` (``pure=True`` sets ``LITEPROF_PURE=1``), and
the repository root on ``PYTHONPATH`` so that ``bench`` imports from anywhere.

Keep this module, ``bench/__init__.py`` and the suites' top levels free of heavy imports
(asyncio, numpy, liteprof): the never-enabled child reports what its process imported.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env(pure: bool = False) -> dict[str, str]:
    """The environment of a child: recording off, ``bench`` importable."""
    env = dict(os.environ)
    for var in ("LITEPROF_LOG", "LITEPROF_PROCESSES", "LITEPROF_PURE"):
        env.pop(var, None)
    if pure:
        env["LITEPROF_PURE"] = "1"
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = ROOT + (os.pathsep + path if path else "")
    return env


def run_child(
    module: str, args: list[str], pure: bool = False, timeout: float = 600
) -> dict[str, Any]:
    """Run ``module.child(args)`` in a fresh interpreter; its result."""
    cmd = [sys.executable, "-m", "bench.child", module, *args]
    proc = subprocess.run(
        cmd, env=child_env(pure), capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"child {module} {args[:1]} failed ({proc.returncode}): {proc.stderr[-2000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str]) -> int:
    """The child's side: run one module's ``child()``, print its result as JSON."""
    if not argv or not argv[0].startswith("bench."):
        print("usage: python -m bench.child bench.MODULE [ARG...]", file=sys.stderr)
        return 2
    module = importlib.import_module(argv[0])
    result = module.child(argv[1:])
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
