"""Which actions of a config an event triggers: every match runs, in config order."""

from __future__ import annotations

import logging

from executor.config.glob import glob_match
from executor.config.jsonpaths import MISSING, JsonPathLimitError, as_text, find_first
from executor.config.model import Action, EventSelector, JobConfig, JsonPathFilter
from executor.model.events import Event

log = logging.getLogger(__name__)

# Per (config, event type): for each action whose names match the type, the jsonpath filters
# still to check (None: no filter, the action matches). Event types repeat, so the globs of a
# large config are evaluated once per type instead of once per event.
_Plan = list[tuple[Action, list[JsonPathFilter | None]]]
_PLANS: dict[tuple[str, str, str], _Plan] = {}
_MAX_PLANS = 4096
# Bounded by bytes as well as entries: event types come from outside, and 4,096 long ones
# would otherwise keep megabytes. A type longer than _MAX_CACHED_TYPE is matched uncached.
_MAX_PLAN_BYTES = 4 << 20
_MAX_CACHED_TYPE = 1024
_plan_bytes = 0


def filter_matches(filt: JsonPathFilter | None, event: Event) -> bool:
    if filt is None:
        return True
    try:
        found = find_first(filt.property, event.document())
    except JsonPathLimitError as exc:
        log.warning("event %s does not match: %s", event.id, exc)
        return False
    # A path that finds nothing never matches, even `match: ""`.
    return found is not MISSING and as_text(found) == filt.match


def selector_matches(selector: EventSelector, event: Event) -> bool:
    return glob_match(selector.name, event.type) and filter_matches(selector.jsonpath, event)


def action_matches(action: Action, event: Event) -> bool:
    return any(selector_matches(s, event) for s in action.events)


def _plan(config: JobConfig, event_type: str) -> _Plan:
    global _plan_bytes
    key = (config.source, config.digest, event_type)
    plan = _PLANS.get(key)
    if plan is None:
        plan = []
        for action in config.actions:
            filters = [s.jsonpath for s in action.events if glob_match(s.name, event_type)]
            if filters:
                plan.append((action, filters))
        if len(event_type) > _MAX_CACHED_TYPE:
            return plan
        cost = plan_cost(key, plan)
        if len(_PLANS) >= _MAX_PLANS or _plan_bytes + cost > _MAX_PLAN_BYTES:
            _PLANS.clear()
            _plan_bytes = 0
        _PLANS[key] = plan
        _plan_bytes += cost
    return plan


def plan_cost(key: tuple[str, str, str], plan: _Plan) -> int:
    """About what one cache entry keeps: its key's text and a pointer pair per action."""
    return sum(len(part) for part in key) + 64 * (1 + sum(1 + len(f) for _, f in plan))


def matching_actions(config: JobConfig, event: Event) -> list[Action]:
    if not config.digest:  # built in code, not parsed from a file: nothing to key a cache on
        return [a for a in config.actions if action_matches(a, event)]
    return [
        action
        for action, filters in _plan(config, event.type)
        if any(filter_matches(f, event) for f in filters)
    ]
