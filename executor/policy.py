"""Operator policy applied while planning: which images may run, whether privileged is allowed."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from executor.config.glob import glob_match

log = logging.getLogger(__name__)


# Safe by default: non-root, no privilege escalation, no capabilities, a read-only root file
# system, the runtime's seccomp profile. Job containers start from it; init containers use it.
RESTRICTED_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


class PolicyError(ValueError):
    """The task may not run as written; the message is shown to the user in the finished event."""


def allows_everything(allowed: tuple[str, ...]) -> bool:
    return not allowed or "*" in allowed


def warn_if_open(allowed: tuple[str, ...]) -> None:
    if allows_everything(allowed):
        log.warning("ALLOWED_IMAGE_LIST is empty or '*': every image may run; set a list of globs")


def check_image(image: str, allowed: tuple[str, ...]) -> None:
    if allows_everything(allowed):
        return
    if not any(glob_match(pattern, image) for pattern in allowed):
        raise PolicyError(f"Forbidden: Image {image} does not match configured image allowlist.")


def privileged_reason(security_context: Mapping[str, Any]) -> str | None:
    """What in a container securityContext grants privilege, or None."""
    if security_context.get("privileged") is True:
        return "privileged: true"
    if security_context.get("allowPrivilegeEscalation") is True:
        return "allowPrivilegeEscalation: true"
    capabilities = security_context.get("capabilities")
    raw = capabilities.get("add") if isinstance(capabilities, Mapping) else None
    added = {str(c).upper().removeprefix("CAP_") for c in raw} if isinstance(raw, list) else set()
    if "ALL" in added:
        return "every capability (capabilities.add: ALL)"
    if "SYS_ADMIN" in added:
        return "the capability SYS_ADMIN"
    return None


def check_privileged(task_name: str, security_context: Mapping[str, Any], allow: bool) -> None:
    what = privileged_reason(security_context)
    if what is None:
        return
    if not allow:
        raise PolicyError(
            f"Forbidden: task '{task_name}' asks for {what}, but privileged jobs are not "
            "allowed (set ALLOW_PRIVILEGED_JOBS=true to permit them)"
        )
    log.warning("task %r runs with %s (ALLOW_PRIVILEGED_JOBS is set)", task_name, what)
