"""`job-executor lint`: errors from the parser and from the operator's policy (the same settings
and checks as `render` and `serve`), plus warnings about configs that parse but probably do not do
what their author meant (mostly habits carried over from JES)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from executor.config.defaults import secret_names
from executor.config.glob import GlobError, compile_glob, globs_overlap, is_literal
from executor.config.images import normalise_entry, reaches_into_registry
from executor.config.model import EventSelector, JobConfig, Task
from executor.config.parse import read_config_file
from executor.model.problems import ConfigError, Problem
from executor.planner import MIN_TTL_SECONDS, merged_security_context
from executor.policy import PolicyError, check_image, check_privileged, check_secret, check_supply_chain
from executor.resolvers.base import CONFIG_PATH
from executor.settings import Settings
from executor.settings.serving import ConfigSettings
from executor.support.envvars import SettingsError

CONFIG_NAME = "config.yaml"
# The phases of a Keptn event type (sh.keptn.event.<task>.<phase>); only .triggered is answered.
PHASES = (".triggered", ".started", ".finished", ".status.changed", ".invalidated")
OTHER_PHASES = PHASES[1:]
KEPTN_PREFIX = "sh.keptn.event."
# Regex syntax JES would have honoured but a glob takes literally (`?`, `[..]` and `{..}` are
# glob syntax too, with much the same meaning).
REGEX_SYNTAX = re.compile(r"[\^$+()|]|\\[dws.]")
# `$(NAME)` in a command line: Kubernetes (and our local backend) replace it with the variable's
# value before the program sees it; `$$(NAME)` is the escaped, literal form.
VAR_REFERENCE = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "busybox"})
# Variables whose value comes from the event (planner.task_env), beside `valueFrom: event` entries.
EVENT_VARS = ("KEPTN_PROJECT", "KEPTN_STAGE", "KEPTN_SERVICE")


@dataclass(frozen=True)
class LintResult:
    problems: list[Problem]
    files: int
    actions: int


def lint_paths(paths: Iterable[str], settings: Settings, files_dir: Path | None = None) -> LintResult:
    """Each path is a config file, or a folder whose every job/config.yaml is linted."""
    problems: list[Problem] = []
    files = actions = 0
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(path.rglob(f"job/{CONFIG_NAME}"))
            if not found:
                problems.append(Problem(given, 0, f"no job/{CONFIG_NAME} below this folder"))
            targets = [str(p) for p in found]
        elif not path.exists():
            problems.append(Problem(given, 0, "cannot read file: No such file or directory"))
            continue
        else:
            targets = [given]
        for target in targets:
            config_problems, config = _lint_one(target, settings, files_dir)
            problems.extend(config_problems)
            files += 1
            actions += len(config.actions) if config else 0
    return LintResult(problems, files, actions)


def lint_file(
    path: str,
    settings: Settings | None = None,
    files_dir: Path | None = None,
    config_dir: Path | None = None,
) -> list[Problem]:
    """`config_dir`: the config tree (else CONFIG_DIR of the settings or the environment), to tell
    its root config, which applies to every event, from the others."""
    return _lint_one(path, settings, files_dir, config_dir)[0]


def _lint_one(
    path: str, settings: Settings | None, files_dir: Path | None, config_dir: Path | None = None
) -> tuple[list[Problem], JobConfig | None]:
    try:
        config = read_config_file(path)
    except ConfigError as exc:
        return exc.problems, None
    tree = config_dir or (settings.config.dir if settings is not None else _config_dir())
    root = Path(path).resolve() == (tree / CONFIG_PATH).resolve()
    return lint_config(config, settings, files_root(Path(path), files_dir), root=root), config


def _config_dir() -> Path:
    try:
        return Settings.from_env().config.dir
    except SettingsError:  # another setting is broken: lint is not the place to say so
        return ConfigSettings().dir


def files_root(config_path: Path, files_dir: Path | None) -> Path | None:
    """The tree `files:` resolve against: --files-dir, else the folder holding job/, else unknown."""
    if files_dir is not None:
        return files_dir
    folder = config_path.resolve().parent
    return folder.parent if folder.name == "job" else None


def lint_config(
    config: JobConfig, settings: Settings | None = None, tree: Path | None = None, root: bool = False
) -> list[Problem]:
    settings = settings or Settings()
    src = config.source
    problems: list[Problem] = []
    if root:
        problems.extend(_root_matches_keptn(config))
    if not config.actions:
        problems.append(Problem(src, 1, "the config has no actions: no event runs anything", "warning"))
    for action in config.actions:
        for selector in action.events:
            problems.extend(_event_name_problems(src, selector))
        rule = action.concurrency
        if action.silent and rule is not None and rule.on_conflict != "queue":
            message = (
                f"action '{action.name}' is silent, so nobody hears of the runs that onConflict "
                f"{rule.on_conflict} stops; use queue, or let the action report"
            )
            problems.append(Problem(src, rule.line, message, "warning"))
        for task in action.tasks:
            problems.extend(_task_problems(src, task, settings, tree))
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
                        "run and both send started/finished events (JES ran only the first)",
                        "warning",
                    )
                )
                break
    return sorted(problems, key=lambda p: p.line)


def _event_name_problems(src: str, selector: EventSelector) -> list[Problem]:
    name = selector.name
    if not is_literal(name):
        try:
            compile_glob(name)
        except GlobError as exc:
            # serve reads the config as JES did (the action is kept; it never matches).
            return [
                Problem(
                    src,
                    selector.line,
                    f"event name: {exc}; as it is, it matches no event",
                )
            ]
    found = REGEX_SYNTAX.search(name)
    if found:
        return [
            Problem(
                src,
                selector.line,
                f"event name {name!r} contains {found.group()!r}: names are globs (*, ?, [..], {{a,b}}) "
                "that must match the whole type (JES matched a regular expression)",
                "warning",
            )
        ]
    if is_literal(name) and name.startswith(KEPTN_PREFIX) and not name.endswith(PHASES):
        # JES matched the name as an unanchored regex, so a task name alone was a prefix.
        return [
            Problem(
                src,
                selector.line,
                f"no Keptn event is named exactly {name!r} (names must match the whole type); "
                f"did you mean {name}.triggered?",
                "warning",
            )
        ]
    if _only_keptn_non_task(name):
        return [
            Problem(
                src,
                selector.line,
                f"event name {name!r} can only match Keptn events that are not task events "
                "(sh.keptn.event.<task>.<phase>); like JES, job-executor runs nothing for those",
                "warning",
            )
        ]
    return []


def _task_problems(src: str, task: Task, settings: Settings, tree: Path | None) -> list[Problem]:
    problems: list[Problem] = []
    if task.ttl_seconds_after_finished is not None and task.ttl_seconds_after_finished < MIN_TTL_SECONDS:
        problems.append(
            Problem(
                src,
                task.line,
                f"task '{task.name}': ttlSecondsAfterFinished {task.ttl_seconds_after_finished} "
                f"will be raised to {MIN_TTL_SECONDS}",
                "warning",
            )
        )
    # The policy `render` and `serve` apply, from the same settings; every check, not the first.
    jobs = settings.jobs
    checks: tuple[Callable[[], None], ...] = (
        lambda: check_image(task.image, jobs.allowed_images),
        lambda: check_supply_chain(
            task.image, require_digest=jobs.require_digest, allow_latest=jobs.allow_latest
        ),
        lambda: check_privileged(
            task.name,
            merged_security_context(task.security_context, settings.defaults.security_context),
            jobs.allow_privileged,
            task.annotations,
        ),
    )
    for check in checks:
        try:
            check()
        except PolicyError as exc:
            problems.append(Problem(src, task.line, f"task '{task.name}': {exc}"))
    for name, line in secret_names(task):
        try:
            check_secret(name, settings.defaults.allowed_secrets)
        except PolicyError as exc:
            problems.append(Problem(src, line, f"task '{task.name}': {exc}"))
    if tree is not None:
        for relative, line in zip(task.files, task.file_lines, strict=False):
            if not (tree / relative).exists():
                problems.append(
                    Problem(
                        src,
                        line or task.line,
                        f"task '{task.name}': file '{relative}' does not exist in {tree} (paths are "
                        "relative to the folder holding job/, or to --files-dir)",
                    )
                )
    return problems


def allow_list_warnings(entries: Iterable[str], where: str) -> list[str]:
    """Entries whose glob reaches into the registry host (`alpine*` also allows alpine.evil.com/x)."""
    return [
        f"{where}: warning: entry {entry!r} has a wildcard where the registry host is written, so "
        "as JES compared it, it also allowed other registries (alpine* allowed alpine.evil.com/x). "
        f"Images are compared normalised and this entry now means {normalise_entry(entry)!r}: "
        "write the registry out (for example docker.io/library/alpine:*)"
        for entry in entries
        if entry != "*" and reaches_into_registry(entry)
    ]


def _may_both_match(a: EventSelector, b: EventSelector) -> bool:
    if not globs_overlap(a.name, b.name):
        return False
    if a.jsonpath and b.jsonpath and a.jsonpath.property == b.jsonpath.property:
        return a.jsonpath.match == b.jsonpath.match
    return True


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
