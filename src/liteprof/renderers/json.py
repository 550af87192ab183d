"""``--format json``: the report object itself (SPEC.md)."""

from __future__ import annotations

import json
from typing import Any

from .base import Renderer


class JsonRenderer(Renderer):
    def render(self, report: dict[str, Any]) -> str:
        return json.dumps(report, indent=2, ensure_ascii=False)
