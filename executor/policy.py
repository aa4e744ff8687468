"""Operator policy applied while planning: which images may run, whether privileged is allowed."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from executor.glob import glob_match

log = logging.getLogger(__name__)


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


def check_privileged(task_name: str, security_context: Mapping[str, Any], allow: bool) -> None:
    if not security_context.get("privileged") and not security_context.get("allowPrivilegeEscalation"):
        return
    what = "privileged" if security_context.get("privileged") else "allowPrivilegeEscalation"
    if not allow:
        raise PolicyError(
            f"Forbidden: task '{task_name}' asks for {what}: true, but privileged jobs are not "
            "allowed (set ALLOW_PRIVILEGED_JOBS=true to permit them)"
        )
    log.warning("task %r runs with %s: true (ALLOW_PRIVILEGED_JOBS is set)", task_name, what)
