"""The Backend protocol: submit, wait, cancel, adopt.

`submit` must be idempotent: submitting the same spec again (after a crash, or a second
delivery of the event) returns a handle to the task already started, never a second run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from executor.model.tasks import Adopted, TaskHandle, TaskOutcome, TaskSpec

# What a finished event may quote of a task's output.
MAX_LOG_EXCERPT = 4000


class BackendError(RuntimeError):
    """A backend call failed for good. When the backend was only unreachable or overloaded, the
    error is also a `Temporary`: the pipeline tries the event again later (submit is
    idempotent) instead of failing the task."""


class Backend(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, spec: TaskSpec, files: Mapping[str, bytes]) -> TaskHandle: ...

    async def wait(self, handle: TaskHandle, spec: TaskSpec) -> TaskOutcome:
        """Until the task ends or spec.max_poll_duration passes (then cancel it: timed_out)."""
        ...

    async def cancel(self, handle: TaskHandle) -> None: ...

    async def adopt(self) -> list[Adopted]:
        """Every task of ours this backend can still see, after a restart."""
        ...

    async def discard(self, names: Sequence[str]) -> None:
        """Remove what is left of these ended tasks (their state is forgotten: retention)."""
        ...


@runtime_checkable
class LiveLogs(Protocol):
    """A backend that can show a running task's output before it ends (the read API's logs)."""

    async def live_log(self, job: str) -> str | None:
        """The output so far of the task named `job`; None when the backend does not know it."""
        ...


def tail(text: str, limit: int = MAX_LOG_EXCERPT) -> str:
    if len(text) <= limit:
        return text
    return "[...]\n" + text[-limit:]
