"""The base class of exporters: ``Events`` in, a file for another tool out."""

from __future__ import annotations

from typing import BinaryIO, ClassVar

from ..log.events import Events


class Exporter:
    """Writes ``Events`` to a binary stream in one tool's format.

    ``extension`` is the usual file suffix; ``needs`` names the optional package the
    format needs (imported lazily), or is empty.
    """

    extension: ClassVar[str] = ""
    needs: ClassVar[str] = ""

    def write(self, events: Events, out: BinaryIO) -> None:
        raise NotImplementedError
