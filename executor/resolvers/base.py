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
# What Keptn accepts as a project, stage or service name (go-utils pkg/lib/keptn
# ValidateKeptnEntityName): a lower-case letter, then lower-case letters, digits and '-', not
# ending in '-'. Keptn creates nothing else, so any other name in an event did not come from it.
KEPTN_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,98}[a-z0-9])?$")


class InvalidNames(ValueError):
    """The event's project, stage or service is not a Keptn name. Such an event is refused
    rather than resolved at another level: the name would otherwise reach task environments
    (KEPTN_SERVICE, ...) and shell command lines as the event sent it."""


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


def check_names(project: str, stage: str, service: str) -> None:
    """Raise InvalidNames naming each given (non-empty) name that Keptn would not accept."""
    bad = [
        f"{what} {value!r}"
        for what, value in (("project", project), ("stage", stage), ("service", service))
        if value and not KEPTN_NAME.match(value)
    ]
    if bad:
        raise InvalidNames(
            f"the event's {' and '.join(bad)} {'is' if len(bad) == 1 else 'are'} not "
            "valid Keptn names (a lower-case letter, then lower-case letters, digits or '-', "
            "not ending in '-'); the event was refused and no config was looked up for it"
        )


def safe_name(name: str) -> bool:
    """A project, stage or service name that can be a path segment (no '/', no '..')."""
    return bool(_NAME.match(name)) and name not in (".", "..")
