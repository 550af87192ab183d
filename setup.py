"""Build the optional C core; fall back to pure Python when it cannot be compiled.

``pip install .`` compiles ``src/liteprof/_core.c``. Where no working compiler (or no
Python headers) exists, the install still succeeds and liteprof records with its
pure-Python twin; ``liteprof --version`` and ``liteprof.BACKEND`` tell which is active.
Set ``LITEPROF_NO_EXTENSION=1`` to skip the C core on purpose.
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
            self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        bar = "*" * 75
        sys.stderr.write(
            f"\n{bar}\nWARNING: the liteprof C core could not be compiled ({exc}).\n"
            "liteprof is installed as pure Python: recording works, at a higher cost\n"
            f"per scope. liteprof.BACKEND == 'python' tells it at run time.\n{bar}\n\n"
        )


ext_modules = []
if os.environ.get("LITEPROF_NO_EXTENSION", "") in ("", "0") and os.path.exists(
    os.path.join("src", "liteprof", "_core.c")
):
    extra = ["-O2", "-Wall", "-Werror"] if os.name != "nt" else []
    ext_modules.append(
        Extension("liteprof._core", ["src/liteprof/_core.c"], extra_compile_args=extra)
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
