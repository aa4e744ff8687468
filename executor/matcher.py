"""Which actions of a config an event triggers: every match runs, in config order."""

from __future__ import annotations

from executor.config.model import Action, EventSelector, JobConfig
from executor.events import Event
from executor.glob import glob_match
from executor.jsonpaths import MISSING, as_text, find_first


def selector_matches(selector: EventSelector, event: Event) -> bool:
    if not glob_match(selector.name, event.type):
        return False
    if selector.jsonpath is None:
        return True
    found = find_first(selector.jsonpath.property, event.document())
    # A path that finds nothing never matches, even `match: ""`.
    return found is not MISSING and as_text(found) == selector.jsonpath.match


def action_matches(action: Action, event: Event) -> bool:
    return any(selector_matches(s, event) for s in action.events)


def matching_actions(config: JobConfig, event: Event) -> list[Action]:
    return [a for a in config.actions if action_matches(a, event)]
