"""What a local task is given, laid out as a Kubernetes pod would see it: its environment in
Kubernetes' order, the event as `/keptn/event.json`, and its `secretFiles` folders.

A task runs on this machine, not in a container, so the absolute paths a config names cannot be
created where it says: `/keptn` is `<work dir>/keptn`, and a secretFiles `mountPath` such as
`/etc/kube` is `<work dir>/secrets/etc/kube`. Written as a path of its own in the command, the
arguments, the environment or the working directory, each is rewritten to its folder here.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from executor.backends.local import workdir
from executor.config.paths import STAGING_ROOT
from executor.model.tasks import EVENT_FILE_PATH, TaskSpec

# Linux refuses to exec with one argument or env string over 32 pages (MAX_ARG_STRLEN).
MAX_ENV_BYTES = 128 * 1024

SECRETS = "secrets"


def secret_folder(secrets_dir: Path | None, name: str) -> Path:
    """A secret is a folder of files, one per key (the layout of a mounted Kubernetes secret)."""
    folder = secrets_dir / name if secrets_dir else None
    if folder is None or not folder.is_dir():
        where = secrets_dir or "LOCAL_SECRETS_DIR (not set)"
        raise ValueError(f"secret '{name}' not found in {where}")
    return folder


def read_secret(secrets_dir: Path | None, name: str, errors: str = "strict") -> dict[str, str]:
    folder = secret_folder(secrets_dir, name)
    return {
        p.name: p.read_bytes().decode("utf-8", errors).rstrip("\n")
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def environment(
    spec: TaskSpec, base: Mapping[str, str], secrets_dir: Path | None, folders: Folders
) -> dict[str, str]:
    """The task's variables in the order Kubernetes applies them (kubelet_pods.go
    makeEnvironmentVariables): every key of the `envFrom` secrets, a later secret over an earlier
    one, then the `env` entries over them all. The service never reads a Secret on Kubernetes,
    so this is the one order both backends can honour."""
    env = dict(base)
    for secret in spec.secret_refs:  # only the secrets this task names
        env.update(read_secret(secrets_dir, secret))
    for var in spec.env:
        check_env_size(var.name, var.value)  # before any work on it: a rebase of megabytes holds the loop
        env[var.name] = folders.rebase(var.value)
    return env


def check_env_size(key: str, value: str) -> None:
    if len(key) + len(value.encode()) + 2 > MAX_ENV_BYTES:
        raise ValueError(
            f"env {key} is {len(value.encode())} bytes; a process on this machine takes at most "
            f"{MAX_ENV_BYTES // 1024} KiB per variable (Linux MAX_ARG_STRLEN): pick a smaller part "
            "of the event with a narrower jsonpath"
        )


class Folders:
    """The task's absolute folders (`/keptn`, each secretFiles mountPath) -> where they are here."""

    def __init__(self, spec: TaskSpec, work: str) -> None:
        self.here = {STAGING_ROOT: f"{work}/keptn"}
        for mount in spec.secret_files:
            self.here[mount.mount_path] = f"{work}/{SECRETS}{mount.mount_path}"
        # Longest first, so /etc/kube/extra is not taken for /etc/kube.
        names = "|".join(re.escape(f) for f in sorted(self.here, key=len, reverse=True))
        self._word = re.compile(r"(?<![\w./-])(" + names + r")(?![\w.-])")

    def rebase(self, text: str) -> str:
        """Each folder as a path of its own (`/keptn/a`, `--f=/keptn/a`, `cat /keptn/a`) -> here."""
        return self._word.sub(lambda match: self.here[match.group(1)], text)


def write_event(spec: TaskSpec, work: str) -> None:
    if spec.event_file:
        path = f"{work}/keptn/{EVENT_FILE_PATH.removeprefix(STAGING_ROOT + '/')}"
        workdir.write(path, spec.event_file)


def copy_secret_files(spec: TaskSpec, work: str, secrets_dir: Path | None) -> None:
    """Each secretFiles entry: the secret's files copied into its folder, readable by the task's
    user only (files 0400, folders 0500; isolation.hand_over gives them to that user)."""
    if spec.secret_files:
        remove_secret_files(work)  # half-copied by a start that was stopped before the task ran
    for mount in spec.secret_files:
        folder = secret_folder(secrets_dir, mount.name)
        target = Path(f"{work}/{SECRETS}{mount.mount_path}")
        target.mkdir(parents=True, mode=0o700)
        for source in sorted(folder.iterdir()):
            if source.is_file():  # byte for byte, as a mounted Secret's file is
                fd = os.open(target / source.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(source.read_bytes())
        target.chmod(0o500)


def remove_secret_files(work: str) -> None:
    """The copies go once the task has ended: secrets are not kept with its output."""
    folder = f"{work}/{SECRETS}"
    if not os.path.isdir(folder):
        return
    for parent, _dirs, _files in os.walk(folder):
        with contextlib.suppress(OSError):
            os.chmod(parent, 0o700)  # a 0500 folder's files cannot be removed, even by their owner
    shutil.rmtree(folder, ignore_errors=True)


def secret_values(spec: TaskSpec, secrets_dir: Path | None) -> list[str]:
    """The values of every secret the task received, as env or as files, to mask in its output."""
    values: list[str] = []
    names = (*spec.secret_refs, *(m.name for m in spec.secret_files))
    for name in dict.fromkeys(names):
        with contextlib.suppress(ValueError, OSError):
            values += read_secret(secrets_dir, name, errors="replace").values()
    return values
