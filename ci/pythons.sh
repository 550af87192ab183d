#!/usr/bin/env bash
# Build the C core (warnings are errors: LITEPROF_STRICT_BUILD=1) with every CPython 3.9-3.13
# that pyenv has here, each in a fresh venv,
# and smoke-test it: BACKEND must be "c" and a recording of nested scopes must read back,
# slot by slot, with nothing but struct (tests/rawlog.py, the tests' oracle, loaded by
# path). Versions that are not installed are skipped; any failure of one that is makes the
# exit status non-zero.
#
#   bash ci/pythons.sh            # every 3.9-3.13 found
#   bash ci/pythons.sh 3.11 3.12  # only these
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(3.9 3.10 3.11 3.12 3.13)

if command -v pyenv >/dev/null 2>&1; then
    PYENV_ROOT=$(pyenv root)
else
    PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}
fi

# The newest installed CPython X.Y.Z for X.Y (plain versions only: no -dev, no t builds).
find_python() {
    local minor=$1 candidates=()
    if command -v pyenv >/dev/null 2>&1; then
        mapfile -t candidates < <(pyenv versions --bare 2>/dev/null)
    elif [ -d "$PYENV_ROOT/versions" ]; then
        mapfile -t candidates < <(ls "$PYENV_ROOT/versions")
    fi
    printf '%s\n' "${candidates[@]}" | grep -E "^${minor//./\\.}\.[0-9]+$" | sort -t. -k3,3n |
        tail -n 1
}

SMOKE=$(cat <<'EOF'
import importlib.util, os, sys, tempfile, threading
import liteprof
from liteprof.log import format as F

assert liteprof.BACKEND == "c", f"backend is {liteprof.BACKEND!r}, not the C core"
from liteprof.log import _cread, _ctext  # the reader's C loops: built too, or this fails
d = tempfile.mkdtemp(prefix="liteprof-ci-")
liteprof.enable(d)
outer = liteprof.Scope("CI:Outer")

@liteprof.timed("CI:Timed")
def timed(x):
    return x + 1

def work(n):
    for i in range(n):
        with outer:
            with liteprof.scope("CI:Inner"):
                assert timed(i) == i + 1
            try:
                with liteprof.scope("CI:Error"):
                    raise KeyError(i)
            except KeyError:
                pass

work(3000)
t = threading.Thread(target=work, args=(100,), name="ci-worker")
t.start(); t.join()
liteprof.disable()

files = [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".lpf")]
assert len(files) == 1, files
# The tests' struct-only oracle (no numpy, no liteprof code), loaded by path.
spec = importlib.util.spec_from_file_location("rawlog", sys.argv[1])
rawlog = sys.modules["rawlog"] = importlib.util.module_from_spec(spec)  # dataclasses need it
spec.loader.exec_module(rawlog)
log = rawlog.read(files[0])
assert (log.magic, log.version, log.header_size, log.slot_size) == (
    b"LITEPROF", F.VERSION, 4096, 32)
assert not log.lane_slots and not log.reserved_slots, "sync code writes only events"

by_thread = log.by_thread()
assert sorted(by_thread) == ["MainThread", "ci-worker"], sorted(by_thread)
for tname, n in (("MainThread", 3000), ("ci-worker", 100)):
    evs = by_thread[tname]
    count = {}
    for nm, start, dur, child, flags in evs:
        count[nm] = count.get(nm, 0) + 1
        depth, error = flags >> 16, bool(flags & 0x100)
        assert dur >= 0 and 0 <= child <= dur, (nm, dur, child)
        assert depth == {"CI:Outer": 0, "CI:Inner": 1, "CI:Error": 1, "CI:Timed": 2}[nm]
        assert error == (nm == "CI:Error"), (nm, flags)
    assert count == {"CI:Outer": n, "CI:Inner": n, "CI:Timed": n, "CI:Error": n}, count
    # Every event closes in order: Timed, Inner, Error, Outer; Outer's child time is
    # exactly its two direct children.
    for i in range(0, len(evs), 4):
        t_, inner, err, out = evs[i:i + 4]
        assert [e[0] for e in (t_, inner, err, out)] == [
            "CI:Timed", "CI:Inner", "CI:Error", "CI:Outer"]
        assert inner[3] == t_[2] and out[3] == inner[2] + err[2]
print(f"ok: Python {sys.version.split()[0]}, backend {liteprof.BACKEND}, "
      f"{len(log.events)} events")
EOF
)

status=0
ran=0
for minor in "${wanted[@]}"; do
    version=$(find_python "$minor")
    if [ -z "$version" ]; then
        echo "== $minor: not installed, skipped"
        continue
    fi
    python="$PYENV_ROOT/versions/$version/bin/python"
    if [ ! -x "$python" ]; then
        echo "== $minor: $python missing, skipped"
        continue
    fi
    ran=$((ran + 1))
    echo "== $version"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/liteprof-py${minor}-XXXXXX")
    ok=1
    if ! "$python" -m venv "$tmp/venv"; then
        echo "FAIL $version: cannot create a venv"
        ok=0
    elif ! LITEPROF_STRICT_BUILD=1 "$tmp/venv/bin/python" -m pip install -v "$ROOT" >"$tmp/pip.log" 2>&1; then
        echo "FAIL $version: pip install failed"
        tail -n 30 "$tmp/pip.log"
        ok=0
    elif grep -q "could not be compiled" "$tmp/pip.log"; then
        echo "FAIL $version: the C core did not compile"
        grep -E "error|warning" "$tmp/pip.log" | head -n 30
        ok=0
    elif ! (cd "$tmp" && "$tmp/venv/bin/python" -c "$SMOKE" "$ROOT/tests/rawlog.py"); then
        echo "FAIL $version: smoke run"
        ok=0
    fi
    rm -rf "$tmp"
    [ $ok -eq 1 ] || status=1
done

if [ $ran -eq 0 ]; then
    echo "no CPython 3.9-3.13 found under pyenv: nothing checked"
fi
exit $status
