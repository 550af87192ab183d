"""The C modules' stubs (``*.pyi``) name what the modules define, no more and no less.

``stubtest`` (README, Development) checks the signatures of what a stub declares, but not
private names a module has and its stub lacks: this test reads each stub with ``ast`` and
compares names both ways, at module level and in each class.
"""

from __future__ import annotations

import ast
import importlib
import os
from types import ModuleType

import pytest

import liteprof

PACKAGE = os.path.dirname(liteprof.__file__)
MODULES = ["liteprof.record._core", "liteprof.log._cread", "liteprof.log._ctext"]
# Stub-only helpers for the type checker, never objects of the module.
TYPING_ONLY = {"_F"}


def _stub(module: str) -> ast.Module:
    rel = module.split(".", 1)[1].replace(".", os.sep) + ".pyi"
    with open(os.path.join(PACKAGE, rel)) as fh:
        return ast.parse(fh.read())


def _names(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    out: dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
        elif isinstance(node, ast.Assign):
            out.update((t.id, node) for t in node.targets if isinstance(t, ast.Name))
    return out


def _own(obj: ModuleType | type) -> set[str]:
    """What ``obj`` itself defines, without the dunders every module or type has."""
    return {k for k in vars(obj) if not (k.startswith("__") and k.endswith("__"))}


@pytest.mark.parametrize("module", MODULES)
def test_stub_names_what_the_module_defines(module: str) -> None:
    mod = importlib.import_module(module)
    declared = _names(_stub(module).body)
    names = set(declared) - TYPING_ONLY
    assert _own(mod) - names == set(), "in the module, missing from its stub"
    assert {n for n in names if not hasattr(mod, n)} == set(), "in the stub only"
    for name, node in declared.items():
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(mod, name)
        members = _names(node.body)
        assert _own(cls) - set(members) == set(), f"{name}: in the type, missing from the stub"
        # Methods are the type's; annotated attributes may be each instance's own
        # (TimedFunction's __wrapped__, copied from the function it wraps).
        methods = {m for m, n in members.items() if isinstance(n, ast.FunctionDef)}
        assert {m for m in methods if not hasattr(cls, m)} == set(), f"{name}: stub only"


def test_the_comparison_sees_a_missing_name() -> None:
    """The check above can fail: a stub without one of the module's functions is caught."""
    tree = _stub("liteprof.record._core")
    tree.body = [n for n in tree.body if getattr(n, "name", "") != "_fold"]
    mod = importlib.import_module("liteprof.record._core")
    assert _own(mod) - set(_names(tree.body)) == {"_fold"}
