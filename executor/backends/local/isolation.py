"""What keeps a local task away from the service: another user, and masked secret values.

The local backend trusts its configs (README, Security): a task runs on this machine. What it
does do: when the service runs as root, each task runs as another user (LOCAL_RUN_AS_USER,
`nobody` by default) with no supplementary groups, so it cannot read the service's environment
through /proc, the state database or other tasks' work dirs (0700, entered by name only); it gets
as environment only the secrets it names; and the values of those secrets are masked in what is
kept or sent of its output (log excerpt, finished message, run history), as Tekton masks step
output (tektoncd/pipeline#3373).
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from executor.backends.local.children import RunAs
from executor.model.tasks import TaskOutcome
from executor.support.envvars import SettingsError

MASK = "***"
# Shorter values ("1", "yes") would mask ordinary words of the output and tell nothing away.
MIN_MASKED_LENGTH = 4


def run_as_user(name: str) -> RunAs | None:
    """The user tasks run as: only when the service is root (no one else can switch) and a user
    is named. An unknown name is a settings error, said at start."""
    if not name or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SettingsError(
            f"LOCAL_RUN_AS_USER={name!r}: no such user on this machine; name an existing "
            "unprivileged user (or set it empty to run tasks as root)"
        ) from None
    if entry.pw_uid == 0:
        return None
    return RunAs(entry.pw_uid, entry.pw_gid)


def hand_over(work: str, run_as: RunAs) -> None:
    """The task's user owns its work dir (to write output, pid and exit files and its result)."""
    for folder, dirs, files in os.walk(work):
        os.chown(folder, run_as.uid, run_as.gid)
        for name in (*dirs, *files):
            if name != "lock":
                os.chown(os.path.join(folder, name), run_as.uid, run_as.gid, follow_symlinks=False)


def unreachable(folder: Path, run_as: RunAs) -> str:
    """The first folder on the way to `folder` that the task's user may not pass through (no
    search permission for it by the mode bits), or "" when it can reach it. A task started
    there could not write its pid, output or exit code, and would end saying only that."""
    for step in (*reversed(folder.resolve().parents), folder.resolve()):
        try:
            info = step.stat()
        except OSError:
            return ""  # not there yet: made by start(), 0711
        if info.st_uid == run_as.uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == run_as.gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return str(step)
    return ""


def mask(text: str, values: Iterable[str]) -> str:
    # Longest first, so a value containing another is masked whole.
    for value in sorted({v for v in values if len(v) >= MIN_MASKED_LENGTH}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def masked(outcome: TaskOutcome, values: list[str]) -> TaskOutcome:
    if not values:
        return outcome
    result = outcome.result
    if result is not None:
        result = mask(result.decode("utf-8", "replace"), values).encode()
    return replace(
        outcome, logs=mask(outcome.logs, values), reason=mask(outcome.reason, values), result=result
    )
