"""The garbage collector's settings for a long-running service.

With CPython's defaults the young generation is collected every 700 allocations of containers
(dicts, lists, futures, frames): a received event makes a few hundred, so the collector ran
every few requests and took 10-16% of `serve`'s CPU under load (measured with py-spy's native
frames in bench/ingest.py's setting). Once the service has started:

- what start-up made (modules, the config, the app, the clients) is frozen: it lives as long as
  the process, and the collector no longer walks it when it looks at the old generation;
- the young generation is collected every YOUNG_THRESHOLD allocations. Cycles are found as
  before, only later: what waits meanwhile is a few thousand small objects at most.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def settle() -> str:
    """Called once, when the service has started; what was done, for the start-up log."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return (
        f"{gc.get_freeze_count():,} start-up objects frozen; the young generation is collected "
        f"every {YOUNG_THRESHOLD:,} allocations"
    )
