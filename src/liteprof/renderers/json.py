"""``--format json``: the report (or diff) object itself (``docs/REPORT.md``)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from .base import Renderer


class JsonRenderer(Renderer):
    kinds: ClassVar[frozenset[str]] = frozenset({"report", "diff"})

    def render(self, data: dict[str, Any], kind: str = "report") -> str:
        return json.dumps(data, indent=2, ensure_ascii=False)
