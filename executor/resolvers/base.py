"""Config resolvers: which job/config.yaml applies to an event (service, then stage, then project).
The protocol and what its implementations (local.py, keptn.py) share.

A broken file at a level is reported, never skipped for a lower-precedence one: silently
running the project's config because the service's has a typo would run the wrong jobs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from executor.config.model import JobConfig
from executor.model.events import Event

CONFIG_PATH = "job/config.yaml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


FetchFiles = Callable[[Sequence[str]], Awaitable[dict[str, bytes]]]


@dataclass(frozen=True)
class Resolved:
    config: JobConfig
    level: str  # service | stage | project | file
    # The `files:` of a task, read from where the config came from (folders expanded).
    fetch_files: FetchFiles


class Resolver(Protocol):
    async def resolve(self, event: Event) -> Resolved | None: ...

    def describe(self, event: Event) -> str:
        """Where configs for this event were looked for, for messages."""
        ...


def safe_name(name: str) -> bool:
    """A project, stage or service name that can be a path segment (no '/', no '..')."""
    return bool(_NAME.match(name)) and name not in (".", "..")
