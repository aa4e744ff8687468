"""Planner: event + action + settings -> one TaskSpec per task, with policy checked first.

An action is planned whole before any of its tasks runs, so a refused image in task 3 stops
the action before task 1 starts.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from executor.config import defaults as operator
from executor.config.bounds import spec_problem
from executor.config.jsonpaths import MISSING, JsonPathLimitError, as_text, find_first
from executor.config.model import Action, JobConfig, Task
from executor.model.events import Event
from executor.model.tasks import (
    EVENT_FILE_ENV,
    EVENT_FILE_PATH,
    EnvVar,
    SecretMount,
    TaskSpec,
    Trigger,
    kept,
)
from executor.policy import (
    RESTRICTED_SECURITY_CONTEXT,
    PolicyError,
    check_image,
    check_privileged,
    check_secret,
    check_supply_chain,
    privileged_reason,
)
from executor.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_MAX_POLL_SECONDS = 300
DEFAULT_TTL_SECONDS = 21600
MIN_TTL_SECONDS = 60
DEFAULT_NAMESPACE = "keptn"
# Kubernetes allows 256 KiB of annotations per object; the event may take a part of it.
MAX_EVENT_ANNOTATION = 32 * 1024

# A task's securityContext overrides these key by key.
DEFAULT_SECURITY_CONTEXT: dict[str, Any] = RESTRICTED_SECURITY_CONTEXT


_NOT_ENV_NAME = re.compile(r"[^A-Za-z0-9_.]")


class PlanError(ValueError):
    """A task cannot be planned for this event; the message names the task and the cause."""


def trigger_of(event: Event) -> Trigger:
    return Trigger(
        event_id=event.id,
        event_source=event.source,
        event_type=event.type,
        keptn_context=event.keptn_context,
        project=event.project,
        stage=event.stage,
        service=event.service,
        git_commit_id=event.git_commit_id,
        event_json=text if len(text := event.to_json()) <= MAX_EVENT_ANNOTATION else "",
    )


def plan_action(
    event: Event, action: Action, config: JobConfig, settings: Settings, level: str = ""
) -> tuple[TaskSpec, ...]:
    """Raises PolicyError or PlanError for the first task that cannot run. `level`: where the
    config was found (service, stage, project, root or file), told to each task."""
    check_config_secrets(config, settings)
    trigger = trigger_of(event)
    event_json = event.to_json()
    specs = tuple(
        with_context(
            plan_task(event, trigger, action, task, number, config, settings), event_json, task, level
        )
        for number, task in enumerate(action.tasks, start=1)
    )
    for spec in specs:
        # What the event adds may put a Job over the API server's limits: refuse it here, with
        # the reason, rather than have the create fail after earlier tasks ran.
        problem = spec_problem(spec)
        if problem:
            raise PlanError(f"task '{spec.task_name}': {problem}")
    return specs


def with_context(spec: TaskSpec, event_json: str, task: Task, level: str) -> TaskSpec:
    """What every task is given beside its config's env: the event as a file, and where it
    stands (action, task, config level, commit). The config's own entries win on a clash."""
    context = {
        EVENT_FILE_ENV: EVENT_FILE_PATH,
        "JOB_ACTION": spec.action_name,
        "JOB_TASK": spec.task_name,
        "JOB_TASK_INDEX": str(spec.task_index),
        "JOB_CONFIG_LEVEL": level,
        "GIT_COMMIT_ID": spec.trigger.git_commit_id,
    }
    declared = {e.name for e in task.env if e.value_from != "secret"}
    # Like KEPTN_STAGE, a value the event has not (no commit id) is not set at all.
    added = tuple(EnvVar(k, v) for k, v in context.items() if v and k not in declared)
    return replace(
        spec,
        env=(*spec.env, *added),
        event_file=event_json,
        secret_files=tuple(SecretMount(s.name, s.mount_path) for s in task.secret_files),
        continue_on_error=task.continue_on_error,
    )


def plan_task(
    event: Event,
    trigger: Trigger,
    action: Action,
    task: Task,
    number: int,
    config: JobConfig,
    settings: Settings,
) -> TaskSpec:
    check_task_policy(task, settings)
    security_context = merged_security_context(task.security_context, settings.defaults.security_context)
    env, secret_refs = task_env(event, task)
    env = operator.with_extra_env(settings.defaults, env)
    secret_refs = operator.with_default_secrets(settings.defaults, secret_refs)
    defaults = settings.resources
    limits: Mapping[str, str]
    requests: Mapping[str, str]
    if task.resources is None:
        limits, requests = defaults.limits(), defaults.requests()
    else:
        limits, requests = task.resources.limits, task.resources.requests
    if task.service_account:
        account: str | None = task.service_account
        automount = True  # a task that names an account does so to reach the API with it
    else:
        account = settings.jobs.service_account or None
        automount = False
    return TaskSpec(
        trigger=trigger,
        action_name=action.name,
        action_index=action.index,
        task_name=task.name,
        task_index=number,
        config_digest=config.digest,
        image=task.image,
        cmd=task.cmd,
        args=task.args,
        env=env,
        secret_refs=secret_refs,
        files=task.files,
        working_dir=task.working_dir,
        limits=kept(limits),
        requests=kept(requests),
        init_limits=kept(defaults.limits()),
        init_requests=kept(defaults.requests()),
        max_poll_duration=task.max_poll_duration or DEFAULT_MAX_POLL_SECONDS,
        ttl_seconds_after_finished=effective_ttl(task),
        active_deadline_seconds=effective_deadline(
            task.active_deadline_seconds, settings.jobs.deadline_seconds
        ),
        namespace=task.namespace or settings.jobs.namespace or DEFAULT_NAMESPACE,
        annotations=kept(task.annotations),
        security_context=security_context,
        image_pull_policy=task.image_pull_policy,
        cluster_selector=kept(task.cluster_selector),
        service_account=account,
        automount_service_account_token=automount,
        extra_labels=kept(dict(settings.jobs.labels)),
        pod_security_context=operator.pod_security_context(settings.defaults),
        node_selector=kept(operator.node_selector(settings.defaults, task)),
        tolerations=operator.tolerations(settings.defaults, task),
        affinity=kept(operator.affinity(settings.defaults)),
    )


def check_task_policy(task: Task, settings: Settings) -> None:
    """The operator's policy for one task, as planning and `lint` both apply it."""
    jobs = settings.jobs
    check_image(task.image, jobs.allowed_images)
    check_supply_chain(task.image, require_digest=jobs.require_digest, allow_latest=jobs.allow_latest)
    security_context = merged_security_context(task.security_context, settings.defaults.security_context)
    check_privileged(task.name, security_context, jobs.allow_privileged, task.annotations)


def check_config_secrets(config: JobConfig, settings: Settings) -> None:
    """ALLOWED_SECRET_LIST over the whole config, so none of its tasks runs when one names
    another Secret."""
    for action in config.actions:
        for task in action.tasks:
            for name, _line in operator.secret_names(task):
                try:
                    check_secret(name, settings.defaults.allowed_secrets)
                except PolicyError as exc:
                    raise PolicyError(f"task '{task.name}' of action '{action.name}': {exc}") from None


def task_env(event: Event, task: Task) -> tuple[tuple[EnvVar, ...], tuple[str, ...]]:
    """Env of a task: Keptn defaults and the event's CE_* attributes first, then the config's
    entries (which win on a clash). A KEPTN_* default the event has no value for is not set at
    all, so a script can tell "no stage" from an empty one with ${KEPTN_STAGE+set}."""
    keptn = {"KEPTN_PROJECT": event.project, "KEPTN_STAGE": event.stage, "KEPTN_SERVICE": event.service}
    values: dict[str, str] = {k: v for k, v in keptn.items() if v}
    for name in ("id", "source", "type", "subject", "time"):
        values[f"CE_{name.upper()}"] = event.attribute(name)
    for key, value in event.labels.items():
        values[label_env_name(key)] = value
    secrets: list[str] = []
    for entry in task.env:
        if entry.value_from == "secret":
            if entry.name not in secrets:
                secrets.append(entry.name)
        elif entry.value_from == "string":
            values[entry.name] = entry.value
        elif entry.value.strip() == "$" and entry.as_ in (None, "json"):
            # The whole event as JSON: its one shared encoding (keys sorted, as JES's Go encoder
            # wrote them), not a second encode that holds the loop for tens of ms at 1 MiB.
            values[entry.name] = event.to_json()
        else:
            try:
                found = find_first(entry.value, event.document())
            except JsonPathLimitError as exc:
                raise PlanError(f"task '{task.name}': env {entry.name}: {exc}") from None
            if found is MISSING:
                raise PlanError(
                    f"task '{task.name}': env {entry.name}: jsonpath {entry.value} found nothing in the event"
                )
            values[entry.name] = as_text(found, entry.as_)
    return tuple(EnvVar(k, v) for k, v in values.items()), tuple(secrets)


def label_env_name(key: str) -> str:
    """LABELS_<KEY>: upper-cased, spaces and hyphens to '_' (as the original did), and any
    other character an env var name cannot hold (Kubernetes: letters, digits, '_', '.') too."""
    return "LABELS_" + _NOT_ENV_NAME.sub("_", key.upper())


def merged_security_context(task_context: Any, operator_context: Any = ()) -> dict[str, Any]:
    """The built-in restricted context, the operator's (JOB_SECURITY_CONTEXT) over it, the
    task's over that; each layer key by key."""
    merged = copy.deepcopy(DEFAULT_SECURITY_CONTEXT)
    for layer in (dict(operator_context or ()), task_context):
        if not layer:
            continue
        capabilities = merged.get("capabilities")
        merged.update(layer)
        # Capabilities merge key by key too: adding one (NET_BIND_SERVICE, say) keeps every
        # other dropped, as the restricted profile expects; `drop: []` opts out explicitly.
        if isinstance(layer.get("capabilities"), dict) and isinstance(capabilities, dict):
            merged["capabilities"] = {**capabilities, **layer["capabilities"]}
        # Asking for uid 0 while the default still demands non-root would never start.
        if layer.get("runAsUser") == 0 and "runAsNonRoot" not in layer:
            merged.pop("runAsNonRoot", None)
        # The API server refuses privileged or CAP_SYS_ADMIN together with
        # allowPrivilegeEscalation: false, so that default gives way (the policy decides
        # whether such a task may run at all).
        if privileged_reason(layer) and "allowPrivilegeEscalation" not in layer:
            merged.pop("allowPrivilegeEscalation", None)
    return merged


def effective_ttl(task: Task) -> int:
    ttl = DEFAULT_TTL_SECONDS if task.ttl_seconds_after_finished is None else task.ttl_seconds_after_finished
    if ttl < MIN_TTL_SECONDS:
        log.warning(
            "task %r: ttlSecondsAfterFinished %d is below %d; using %d so logs can still be read",
            task.name,
            ttl,
            MIN_TTL_SECONDS,
            MIN_TTL_SECONDS,
        )
        ttl = MIN_TTL_SECONDS
    return ttl


def effective_deadline(task_deadline: int | None, global_deadline: int) -> int | None:
    """The stricter of the task's deadline and the operator's TASK_DEADLINE_SECONDS (0: none)."""
    candidates = [d for d in (task_deadline, global_deadline or None) if d]
    return min(candidates) if candidates else None
