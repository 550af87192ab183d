"""Build the optional C core; fall back to pure Python when it cannot be compiled.

``pip install .`` compiles ``src/liteprof/record/_core.c`` with ``_special.c``, ``_guard.c``
and ``_fold.c``. Where no working compiler (or no Python headers) exists, the install still
succeeds and liteprof records with its pure-Python twin; ``liteprof --version`` and
``liteprof.BACKEND`` tell which is active.
Set ``LITEPROF_NO_EXTENSION=1`` to skip the C core on purpose, and
``LITEPROF_STRICT_BUILD=1`` (CI does) to make compiler warnings errors.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any failure means "no compiler"
            self._warn(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            if ext.name in ("liteprof.log._cread", "liteprof.log._ctext"):
                sys.stderr.write(
                    f"WARNING: liteprof's reader loops could not be compiled ({exc}); "
                    "logs are read with numpy alone, more slowly.\n"
                )
            else:
                self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        bar = "*" * 75
        sys.stderr.write(
            f"\n{bar}\nWARNING: the liteprof C core could not be compiled ({exc}).\n"
            "liteprof is installed as pure Python: recording works, at a higher cost\n"
            f"per scope. liteprof.BACKEND == 'python' tells it at run time.\n{bar}\n\n"
        )


CORE_DIR = os.path.join("src", "liteprof", "record")
CORE_SOURCES = [
    os.path.join(CORE_DIR, name) for name in ("_core.c", "_special.c", "_guard.c", "_fold.c")
]

ext_modules = []
if os.environ.get("LITEPROF_NO_EXTENSION", "") in ("", "0") and all(
    os.path.exists(path) for path in CORE_SOURCES
):
    extra = ["-O2", "-Wall"] if os.name != "nt" else []
    # Warnings are errors in CI only (LITEPROF_STRICT_BUILD=1): a user's newer compiler
    # with one new warning must still get the C core, not a silent pure-Python install.
    if os.environ.get("LITEPROF_STRICT_BUILD", "") not in ("", "0") and os.name != "nt":
        extra.append("-Werror")
    ext_modules.append(
        Extension(
            "liteprof.record._core",
            CORE_SOURCES,
            depends=[
                os.path.join(CORE_DIR, name) for name in ("_clock.h", "_special.h", "_writer.h")
            ],
            extra_compile_args=extra,
        )
    )

    # The reader's loops over every event (liteprof/log/_cread.c); reader.py has numpy
    # stand-ins, so a failed build only makes reading slower.
    ext_modules.append(
        Extension(
            "liteprof.log._cread",
            [os.path.join("src", "liteprof", "log", "_cread.c")],
            extra_compile_args=extra,
        )
    )

    # The text reader's loop over a vLLM text log's lines (liteprof/log/_ctext.c); text.py
    # reads every chunk with numpy where it is not built.
    ext_modules.append(
        Extension(
            "liteprof.log._ctext",
            [os.path.join("src", "liteprof", "log", "_ctext.c")],
            extra_compile_args=extra,
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
