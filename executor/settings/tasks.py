"""What the operator gives every task and where its pod runs: default secrets and variables, the
Secrets configs may name, security contexts and placement. A task's own entries win over these
(config/defaults.py merges them). Each field is one variable, declared once."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from executor.support import envvars, podspec
from executor.support.envvars import SettingsError, env


def _json(check: Callable[[Any, str], list[str]], example: str) -> envvars.Parse:
    """A JSON value, checked; blank is "not set"."""

    def read(name: str, raw: str) -> Any:
        if not raw.strip():
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{name} is not JSON ({exc.msg}); write it like {example}") from None
        problems = check(value, name)
        if problems:
            raise SettingsError("; ".join(problems))
        # Kept as tuples (of items, for an object): a frozen dataclass's defaults must be immutable.
        return tuple(value.items()) if isinstance(value, dict) else tuple(value)

    return read


def _tolerations(value: Any, name: str) -> list[str]:
    if not isinstance(value, list):
        return [f"{name} must be a JSON list of tolerations"]
    return [p for i, item in enumerate(value) for p in podspec.toleration_problems(item, f"{name}[{i}]")]


def _env_map(value: Any, name: str) -> list[str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return [f"{name} must be a JSON object of variable names to strings"]
    return [f"{name}: {k!r} is not a variable name" for k in value if not _ENV_NAME.match(k)]


def _secret_names(name: str, raw: str) -> tuple[str, ...]:
    names = envvars.parse_list(raw)
    for secret in names:
        envvars.dns_subdomain(name, secret)
    return names


def _secret_globs(name: str, raw: str) -> tuple[str, ...]:
    try:
        return envvars.globs(name, raw)
    except SettingsError:
        raise SettingsError(
            f"{name}={raw!r} names no Secret: leave it unset (any Secret, with a warning) or list globs "
            "such as ci-*"
        ) from None


_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
Items = tuple[tuple[str, Any], ...]  # a JSON object's items


@dataclass(frozen=True)
class TaskDefaults:
    """What every task is given, and where its pod runs."""

    secrets: tuple[str, ...] = env(
        "JOB_DEFAULT_SECRETS",
        (),
        _secret_names,
        doc="comma-separated Secrets whose keys every task gets as variables (`envFrom`, before the "
        "task's own secrets, which win); locally `LOCAL_SECRETS_DIR/<name>`",
        shown="(none)",
    )
    extra_env: Items = env(
        "JOB_EXTRA_ENV",
        (),
        _json(_env_map, '{"HTTP_PROXY": "http://proxy:3128"}'),
        doc="JSON object of variables every task gets; the task's `env` entries and the `KEPTN_*` ones "
        "win. Shown in rendered Jobs: put secrets in JOB_DEFAULT_SECRETS instead",
        shown="(none)",
    )
    allowed_secrets: tuple[str, ...] = env(
        "ALLOWED_SECRET_LIST",
        (),
        _secret_globs,
        doc="comma-separated globs of the Secrets a config may name; another is refused before any "
        "of its tasks runs",
        shown="(all, with a warning)",
    )
    security_context: Items = env(
        "JOB_SECURITY_CONTEXT",
        (),
        _json(
            lambda v, n: podspec.security_context_problems(v, podspec.CONTAINER_SECURITY_CONTEXT, n),
            '{"runAsUser": 1000}',
        ),
        doc="JSON container `securityContext` over the built-in restricted one; a task's merges over "
        "it, and `ALLOW_PRIVILEGED_JOBS` judges the result (JES: `jobConfig.jobSecurityContext`)",
        shown="(none)",
    )
    pod_security_context: Items = env(
        "JOB_POD_SECURITY_CONTEXT",
        (),
        _json(
            lambda v, n: podspec.security_context_problems(v, podspec.POD_SECURITY_CONTEXT, n),
            '{"fsGroup": 2000}',
        ),
        doc='JSON pod `securityContext` over the built-in `{"fsGroup": 65532}` (which keeps `/keptn` '
        "writable for any user) (JES: `jobConfig.podSecurityContext`)",
        shown="(none)",
    )
    node_selector: Items = env(
        "JOB_NODE_SELECTOR",
        (),
        _json(podspec.node_selector_problems, '{"kubernetes.io/arch": "amd64"}'),
        doc="JSON `nodeSelector` of every Job pod; a task's `nodeSelector` merges over it",
        shown="(none)",
    )
    tolerations: tuple[Any, ...] = env(
        "JOB_TOLERATIONS",
        (),
        _json(_tolerations, '[{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]'),
        doc="JSON list of `tolerations` of every Job pod; a task's are added to them",
        shown="(none)",
    )
    affinity: Items = env(
        "JOB_AFFINITY",
        (),
        _json(podspec.affinity_problems, '{"nodeAffinity": {...}}'),
        doc="JSON `affinity` of every Job pod",
        shown="(none)",
    )
