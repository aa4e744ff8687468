"""The Backend protocol: submit, wait, cancel, adopt.

`submit` must be idempotent: submitting the same spec again (after a crash, or a second
delivery of the event) returns a handle to the task already started, never a second run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from executor.model.tasks import TaskSpec

Status = Literal["succeeded", "failed", "timed_out", "lost"]

# What a finished event may quote of a task's output.
MAX_LOG_EXCERPT = 4000


class BackendError(RuntimeError):
    """A backend call failed. `transient`: the backend was unreachable or overloaded, so the
    pipeline tries the event again later (submit is idempotent) instead of failing the task."""

    @property
    def transient(self) -> bool:
        return False


@dataclass(frozen=True)
class TaskHandle:
    name: str  # deterministic: the Job name, also the local work dir's name
    namespace: str = ""
    adopted: bool = False  # True when submit found the task already started


@dataclass(frozen=True)
class TaskOutcome:
    status: Status
    reason: str = ""  # why it failed, in a few words: "exit code 2", "BackoffLimitExceeded: ..."
    logs: str = ""  # a bounded excerpt, the end of the output
    result: bytes | None = None  # the raw result file the task wrote, if any
    exit_code: int | None = None
    started_at: str = ""  # ISO 8601 UTC
    finished_at: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True)
class Adopted:
    """A task found running (or finished) by `adopt`, with what its labels tell of it."""

    handle: TaskHandle
    annotations: Mapping[str, str] = field(default_factory=dict)
    running: bool = True


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


def tail(text: str, limit: int = MAX_LOG_EXCERPT) -> str:
    if len(text) <= limit:
        return text
    return "[...]\n" + text[-limit:]
