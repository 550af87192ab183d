"""The text reader's loop over a vLLM text log's lines, in C (see ``_ctext.c``)."""

from typing import Any

def lines(
    data: Any, n: int, ids: Any, values: Any, max_names: int, /
) -> tuple[int, int, list[bytes]] | None: ...
