"""SPEEDUPS: the `speedups` extra's event loop (uvloop) and JSON (orjson, see fastjson.py), used
when installed unless turned off. Measured side by side in bench/kubecpu.py (BENCHMARKS.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from executor.support import fastjson

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def apply(mode: Literal["auto", "off"]) -> LoopFactory | None:
    """Turn the speedups on or off for this process; the event loop factory to run with (None:
    asyncio's own)."""
    enabled = mode == "auto"
    fastjson.use(enabled)
    factory: LoopFactory | None = None
    if enabled:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            factory = uvloop.new_event_loop
    return factory


def describe() -> str:
    """Which speedups this process runs with (called on its event loop), for the start-up log."""
    uvloop_on = type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    used = [name for name, on in (("uvloop", uvloop_on), ("orjson", fastjson.active())) if on]
    return ", ".join(used) if used else "none (standard library event loop and JSON)"


def run(main: Coroutine[Any, Any, None], mode: Literal["auto", "off"]) -> None:
    """asyncio.run(main), on uvloop's event loop when the speedups are on and installed."""
    factory = apply(mode)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)
