"""A task's `secretFiles`: which Secret appears as files, and in which folder of the task.

Read apart from parse.py because the folder rules are their own: an absolute path, outside
`/keptn` (where staged files, the event and the result file live: a mount there would hide them
or be hidden), and no folder twice or inside another (the local backend copies each entry into
its own folder; Kubernetes refuses a repeated mountPath).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from executor.config.fieldreader import FieldReader, kind_of
from executor.config.fields import DNS_SUBDOMAIN
from executor.config.model import SecretFile
from executor.config.paths import STAGING_ROOT
from executor.config.yamlload import Path

# What the JSON Schema can say of a mountPath: absolute, and not /keptn or below it.
MOUNT_PATH = re.compile(r"^/(?!/*keptn(/|$))[^\\:\x00]*[^\\:\x00/][^\\:\x00]*$")


def read_secret_files(reader: FieldReader, obj: dict[str, Any], path: Path) -> tuple[SecretFile, ...]:
    raw = obj.get("secretFiles")
    where = (*path, "secretFiles")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        reader.error(where, f"'secretFiles' must be a list of {{name, mountPath}}, not {kind_of(raw)}")
        return ()
    out: list[SecretFile] = []
    for i, item in enumerate(raw):
        at = (*where, i)
        entry = reader.mapping(item, at, "secretFile", "secretFiles entry")
        if entry is None:
            continue
        name = reader.string(entry, "name", at)
        mount = reader.string(entry, "mountPath", at)
        if name is not None and (len(name) > 253 or not DNS_SUBDOMAIN.match(name)):
            reader.error((*at, "name"), f"secret name {name!r} is not a valid Kubernetes secret name")
            name = None
        if mount is not None:
            problem = mount_path_problem(mount)
            if problem:
                reader.error((*at, "mountPath"), problem)
                mount = None
        if name is None or mount is None:
            continue
        normal = _normal(mount)
        clash = next((s for s in out if _nested(s.mount_path, normal)), None)
        if clash is not None:
            reader.error(
                (*at, "mountPath"),
                f"mountPath {mount!r} overlaps {clash.mount_path!r} of secret '{clash.name}'; "
                "give each secret a folder of its own",
            )
            continue
        out.append(SecretFile(name, normal, reader.doc.line(at)))
    return tuple(out)


def mount_path_problem(mount: str) -> str:
    """What is wrong with a secretFiles mountPath, or "" when it can be used."""
    if not mount.startswith("/"):
        return f"mountPath {mount!r} must be an absolute path such as /etc/credentials"
    if "\x00" in mount or "\\" in mount or ":" in mount:
        return f"mountPath {mount!r} contains a NUL, backslash or ':'; write a plain path such as /etc/creds"
    normal = _normal(mount)
    if normal == "/" or ".." in mount.split("/"):
        return f"mountPath {mount!r} must name a folder below / without '..', such as /etc/credentials"
    if normal == STAGING_ROOT or _inside(STAGING_ROOT, normal):
        return (
            f"mountPath {mount!r} is {STAGING_ROOT} or inside it, where staged files, the event and "
            "the result file are; mount the secret elsewhere, such as /etc/credentials"
        )
    return ""


def _normal(mount: str) -> str:
    # posixpath keeps a leading `//` (POSIX leaves it implementation-defined); Linux does not.
    return "/" + posixpath.normpath(mount).lstrip("/")


def _inside(parent: str, child: str) -> bool:
    """True when `child` is strictly below `parent`."""
    return child.startswith(parent.rstrip("/") + "/")


def _nested(a: str, b: str) -> bool:
    return a == b or _inside(a, b) or _inside(b, a)
