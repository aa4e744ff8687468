"""The operator's defaults for every task (settings/tasks.py) merged with the task's own fields:
the task wins wherever both say something.

- env: JOB_EXTRA_ENV first, so a built-in variable or an `env` entry of the same name replaces it;
- secrets: JOB_DEFAULT_SECRETS before the task's, so on Kubernetes (later `envFrom` wins) and
  locally the task's keys win;
- pod security context: the built-in one (an fsGroup), then JOB_POD_SECURITY_CONTEXT;
- placement: JOB_NODE_SELECTOR with the task's `nodeSelector` over it key by key, JOB_TOLERATIONS
  followed by the task's `tolerations`, JOB_AFFINITY as it is.
"""

from __future__ import annotations

from typing import Any

from executor.config.model import Task
from executor.model.tasks import EnvVar
from executor.settings.tasks import TaskDefaults

# The group of the built-in restricted user (policy.RESTRICTED_SECURITY_CONTEXT): the kubelet makes
# the pod's volumes (the emptyDir at /keptn) writable to this group and adds it to every
# container's groups, so a task running as any other uid can still write its files and result.
DEFAULT_POD_SECURITY_CONTEXT: dict[str, Any] = {"fsGroup": 65532}


def with_extra_env(defaults: TaskDefaults, env: tuple[EnvVar, ...]) -> tuple[EnvVar, ...]:
    given = {var.name for var in env}
    return (*(EnvVar(k, v) for k, v in defaults.extra_env if k not in given), *env)


def with_default_secrets(defaults: TaskDefaults, refs: tuple[str, ...]) -> tuple[str, ...]:
    return (*(s for s in defaults.secrets if s not in refs), *refs)


def pod_security_context(defaults: TaskDefaults) -> dict[str, Any]:
    return {**DEFAULT_POD_SECURITY_CONTEXT, **dict(defaults.pod_security_context)}


def node_selector(defaults: TaskDefaults, task: Task) -> dict[str, str]:
    return {**dict(defaults.node_selector), **task.node_selector}


def tolerations(defaults: TaskDefaults, task: Task) -> tuple[dict[str, Any], ...]:
    found: list[dict[str, Any]] = []
    for toleration in (*defaults.tolerations, *task.tolerations):
        if dict(toleration) not in found:  # the same one twice is harmless but noise
            found.append(dict(toleration))
    return tuple(found)


def affinity(defaults: TaskDefaults) -> dict[str, Any]:
    return dict(defaults.affinity)


def secret_names(task: Task) -> list[tuple[str, int]]:
    """The Secrets a task names (as env or as files), with the line of each."""
    named = [(e.name, e.line or task.line) for e in task.env if e.value_from == "secret"]
    return named + [(f.name, f.line or task.line) for f in task.secret_files]
