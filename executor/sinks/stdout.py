from __future__ import annotations

import json
import sys
from typing import IO

from executor.model.events import OutEvent


class StdoutSink:
    """One JSON line per event: what `run` prints and the embedded default shows."""

    name = "stdout"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    async def send(self, event: OutEvent) -> None:
        stream = self._stream or sys.stdout
        stream.write(json.dumps(event, separators=(",", ":")) + "\n")
        stream.flush()

    async def close(self) -> None:
        return None
