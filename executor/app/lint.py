"""`job-executor lint`: errors from the parser, plus warnings about configs that parse but
probably do not do what their author meant (mostly habits carried over from the original)."""

from __future__ import annotations

import re
from itertools import combinations
from pathlib import Path

from executor.config.glob import globs_overlap
from executor.config.model import EventSelector, JobConfig, Task
from executor.config.parse import read_config_file
from executor.model.problems import ConfigError, Problem
from executor.planner import MIN_TTL_SECONDS
from executor.policy import PolicyError, check_image
from executor.resolvers.base import CONFIG_PATH
from executor.settings import ConfigSettings, Settings
from executor.support.envvars import SettingsError

# Event types of the Keptn phases that are not answered (only Keptn's .triggered ones are).
OTHER_PHASES = (".started", ".finished", ".status.changed", ".invalidated")
# Regex syntax the original would have honoured but a glob takes literally.
REGEX_SYNTAX = re.compile(r"[\^$+?()\[\]{}|\\]")
# `$(NAME)` in a command line: Kubernetes (and our local backend) replace it with the variable's
# value before the program sees it; `$$(NAME)` is the escaped, literal form.
VAR_REFERENCE = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "busybox"})
# Variables whose value comes from the event (planner.task_env), beside `valueFrom: event` entries.
EVENT_VARS = ("KEPTN_PROJECT", "KEPTN_STAGE", "KEPTN_SERVICE")


def lint_file(
    path: str, allowed_images: tuple[str, ...] = (), config_dir: Path | None = None
) -> list[Problem]:
    """`config_dir`: the config tree (CONFIG_DIR from the environment when None), to tell its
    root config, which applies to every event, from the others."""
    try:
        config = read_config_file(path)
    except ConfigError as exc:
        return exc.problems
    root = (config_dir or _config_dir()) / CONFIG_PATH
    return lint_config(config, allowed_images, root=Path(path).resolve() == root.resolve())


def _config_dir() -> Path:
    try:
        return Settings.from_env().config.dir
    except SettingsError:  # another setting is broken: lint is not the place to say so
        return ConfigSettings().dir


def lint_config(config: JobConfig, allowed_images: tuple[str, ...] = (), root: bool = False) -> list[Problem]:
    src = config.source
    problems: list[Problem] = []
    if root:
        problems.extend(_root_matches_keptn(config))
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
        for selector in action.events:
            if _only_keptn_non_task(selector.name):
                problems.append(
                    Problem(
                        src,
                        selector.line,
                        f"event name {selector.name!r} can only match Keptn events that are not task "
                        "events (sh.keptn.event.<task>.<phase>); like the original, job-executor runs "
                        "nothing for those",
                        "warning",
                    )
                )
        for task in action.tasks:
            injected = _event_vars_in_shell(task)
            if injected:
                problems.append(
                    Problem(
                        src,
                        task.line,
                        f"task '{task.name}': $({injected}) in a shell command line is replaced with "
                        "text from the event before the shell reads it, so an event can inject "
                        f'commands; use "${injected}" (double-quoted) inside the script instead',
                        "warning",
                    )
                )
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
            if s.name.endswith(OTHER_PHASES)
            and not globs_overlap(s.name, "*.triggered")
            # Other events are answered with result events, whatever their phase.
            and globs_overlap(s.name, "sh.keptn.*")
        ]
        if quiet:
            problems.append(
                Problem(
                    src,
                    quiet[0].line,
                    f"action '{action.name}' is not silent, but {quiet[0].name!r} is no .triggered event: "
                    "only Keptn's .triggered events are answered with started/finished; add 'silent: true'",
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


def _root_matches_keptn(config: JobConfig) -> list[Problem]:
    """The root config applies to every event: one that matches Keptn task events runs for, and
    answers, every Keptn project and service there is."""
    problems = []
    for action in config.actions:
        selector = next((s for s in action.events if globs_overlap(s.name, "sh.keptn.event.*")), None)
        if selector is not None:
            problems.append(
                Problem(
                    config.source,
                    selector.line,
                    f"action '{action.name}' is in the root config, which applies to every event, and "
                    f"{selector.name!r} matches Keptn events (sh.keptn.event.*): it would run for every "
                    "Keptn project; move it to the project's folder (<project>/job/config.yaml)",
                    "warning",
                )
            )
    return problems


def _may_both_match(a: EventSelector, b: EventSelector) -> bool:
    if not globs_overlap(a.name, b.name):
        return False
    if a.jsonpath and b.jsonpath and a.jsonpath.property == b.jsonpath.property:
        return a.jsonpath.match == b.jsonpath.match
    return True


def _only_keptn_non_task(name: str) -> bool:
    """A selector under sh.keptn.event. that cannot match a five-part task event type ('*' may
    stand for several parts, so a pattern with one matches five parts unless it has more dots)."""
    if not name.startswith("sh.keptn.event.") or REGEX_SYNTAX.search(name):
        return False
    dots = name.count(".")
    return dots > 4 if "*" in name else dots != 4


def _event_vars_in_shell(task: Task) -> str:
    """The first event-derived variable referenced as $(NAME) in a command line run by a shell."""
    line = [*task.cmd, *task.args]
    if not line or "-c" not in line or not any(_program(part) in SHELLS for part in line[:2]):
        return ""
    from_event = {e.name for e in task.env if e.value_from == "event"}
    for part in line:
        for name in VAR_REFERENCE.findall(part):
            if name in EVENT_VARS or name.startswith("LABELS_") or name in from_event:
                return str(name)
    return ""


def _program(part: str) -> str:
    return part.rsplit("/", 1)[-1]
