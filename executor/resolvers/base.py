"""Config resolvers: which job/config.yaml applies to an event (service, then stage, then project,
then the root of a local tree). The protocol and what its implementations (local.py, keptn.py)
share, among it `Levels`: the event's values that name the tree's levels (CONFIG_LEVELS).

A broken file at a level is reported, never skipped for a lower-precedence one: silently
running the project's config because the service's has a typo would run the wrong jobs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from executor.config.jsonpaths import MISSING, JsonPathSyntaxError, compile_path, find_first
from executor.config.model import JobConfig
from executor.model.events import Event
from executor.support.envvars import SettingsError

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
    level: str  # service | stage | project | root | file
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


DEFAULT_LEVELS = ("$.data.project", "$.data.stage", "$.data.service")


@dataclass(frozen=True)
class Levels:
    """The jsonpaths (CONFIG_LEVELS) whose values in an event name the config tree's levels,
    outermost first: `$.data.project,$.data.stage,$.data.service` (Keptn's tree) by default,
    `$.source,$.subject` for a tree by event source, say."""

    paths: tuple[str, ...] = DEFAULT_LEVELS

    def __post_init__(self) -> None:
        if not 1 <= len(self.paths) <= 3:
            raise SettingsError(f"CONFIG_LEVELS names {len(self.paths)} jsonpaths; name one to three")
        for path in self.paths:
            try:
                compile_path(path)
            except JsonPathSyntaxError as exc:
                raise SettingsError(f"CONFIG_LEVELS: {exc}") from None

    def values(self, event: Event) -> tuple[str, ...]:
        """The event's values for the levels, outermost first, up to the first level it has no
        value for (a stage's folder means nothing without its project). InvalidNames when a value
        is not a safe path segment: the event is refused, never resolved at another level."""
        document = event.document()
        found: list[str] = []
        for path in self.paths:
            value = find_first(path, document)
            if value is MISSING or value is None or value == "":
                break
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise InvalidNames(
                    f"config level {path} of the event is a {type(value).__name__}, not a name; "
                    "the event was refused and no config was looked up for it"
                )
            text = str(value)
            if not safe_name(text):
                raise InvalidNames(
                    f"config level {path} of the event is {text[:120]!r}, which is not a safe folder "
                    "name (a letter or digit, then up to 99 letters, digits, '_', '.' or '-'); the "
                    "event was refused and no config was looked up for it"
                )
            found.append(text)
        return tuple(found)
