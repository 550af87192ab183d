"""What ``liteprof run`` imports before and around the command it runs: nothing that the
run does not use (startup is paid by every run; ``bench/suites/cli.py`` measures it). A
test of what is imported, not of time, so it holds on a loaded machine too."""

from __future__ import annotations

import json
import subprocess
import sys

# Each of these once cost liteprof run milliseconds before the command even started.
HEAVY = (
    "typing",  # annotations only
    "json",  # read and written by the report, not by a run that recorded nothing
    "tempfile",  # with random, weakref and shutil's compression modules
    "shutil",
    "subprocess",  # os.posix_spawnp starts the command
    "threading",
    "numpy",
    "liteprof.renderers",  # the --format choices, read only when a --format is given
    "liteprof.exporters",  # the --export choices, likewise
    "liteprof.log.reader",
)

PROBE = """
import json as _json_for_the_probe_only, sys
before = set(sys.modules)
from liteprof.cli import main
code = main(sys.argv[1:])
print(_json_for_the_probe_only.dumps({"code": code, "modules": sorted(set(sys.modules) - before)}))
"""


def test_run_of_a_command_that_records_nothing_imports_nothing_heavy() -> None:
    # json is imported by the probe itself, before the baseline: it cannot count here, so
    # its absence is checked by a second probe below.
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "run", "--", sys.executable, "-c", "pass"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    loaded = [m for m in HEAVY if m in result["modules"] and m != "json"]
    assert loaded == [], f"liteprof run imported {loaded}"
    plain = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom liteprof.cli import main\nmain(sys.argv[1:])\n"
            "print(' '.join(m for m in ('json', 'typing') if m in sys.modules))",
            "run",
            "--",
            sys.executable,
            "-c",
            "pass",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plain.returncode == 0 and plain.stdout.strip() == "", plain.stdout + plain.stderr
