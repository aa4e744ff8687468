"""`job-executor lint`: errors from the parser, plus warnings about configs that parse but
probably do not do what their author meant (mostly habits carried over from the original)."""

from __future__ import annotations

import re
from itertools import combinations

from executor.config.glob import globs_overlap
from executor.config.model import EventSelector, JobConfig
from executor.config.parse import read_config_file
from executor.model.problems import ConfigError, Problem
from executor.planner import MIN_TTL_SECONDS
from executor.policy import PolicyError, check_image

# Event types of the Keptn phases that are not answered (only .triggered ones are).
OTHER_PHASES = (".started", ".finished", ".status.changed", ".invalidated")
# Regex syntax the original would have honoured but a glob takes literally.
REGEX_SYNTAX = re.compile(r"[\^$+?()\[\]{}|\\]")


def lint_file(path: str, allowed_images: tuple[str, ...] = ()) -> list[Problem]:
    try:
        config = read_config_file(path)
    except ConfigError as exc:
        return exc.problems
    return lint_config(config, allowed_images)


def lint_config(config: JobConfig, allowed_images: tuple[str, ...] = ()) -> list[Problem]:
    src = config.source
    problems: list[Problem] = []
    for action in config.actions:
        for selector in action.events:
            found = REGEX_SYNTAX.search(selector.name)
            if found:
                problems.append(
                    Problem(
                        src,
                        selector.line,
                        f"event name {selector.name!r} contains {found.group()!r}: names are globs "
                        "where only '*' is special (the original matched a regular expression)",
                        "warning",
                    )
                )
        for task in action.tasks:
            if (
                task.ttl_seconds_after_finished is not None
                and task.ttl_seconds_after_finished < MIN_TTL_SECONDS
            ):
                problems.append(
                    Problem(
                        src,
                        task.line,
                        f"task '{task.name}': ttlSecondsAfterFinished {task.ttl_seconds_after_finished} "
                        f"will be raised to {MIN_TTL_SECONDS}",
                        "warning",
                    )
                )
            if allowed_images:
                try:
                    check_image(task.image, allowed_images)
                except PolicyError as exc:
                    problems.append(Problem(src, task.line, f"task '{task.name}': {exc}"))
    loud = [a for a in config.actions if not a.silent]
    for action in loud:
        # Names of another Keptn phase: the realistic mistake (placeholders like `e` are not).
        quiet = [
            s
            for s in action.events
            if s.name.endswith(OTHER_PHASES) and not globs_overlap(s.name, "*.triggered")
        ]
        if quiet:
            problems.append(
                Problem(
                    src,
                    quiet[0].line,
                    f"action '{action.name}' is not silent, but {quiet[0].name!r} is no .triggered event: "
                    "only .triggered events are answered with started/finished; add 'silent: true'",
                    "warning",
                )
            )
    for first, second in combinations(loud, 2):
        for a in first.events:
            overlap = next((b for b in second.events if _may_both_match(a, b)), None)
            if overlap is not None:
                problems.append(
                    Problem(
                        src,
                        second.line,
                        f"actions '{first.name}' and '{second.name}' can both match {overlap.name!r}: both "
                        "run and both send started/finished events (the original ran only the first)",
                        "warning",
                    )
                )
                break
    return sorted(problems, key=lambda p: p.line)


def _may_both_match(a: EventSelector, b: EventSelector) -> bool:
    if not globs_overlap(a.name, b.name):
        return False
    if a.jsonpath and b.jsonpath and a.jsonpath.property == b.jsonpath.property:
        return a.jsonpath.match == b.jsonpath.match
    return True
