"""Image references as the container runtime resolves them, and allow-list entries in the same form.

A runtime pulls `alpine:3.20` as `docker.io/library/alpine:3.20` and `locustio/locust` as
`docker.io/locustio/locust:latest` (the rules of github.com/distribution/reference,
ParseNormalizedNamed: the first path part is a registry only when it holds a `.` or a `:` or is
`localhost`). Comparing the allow-list with the references as written made `docker.io/library/*`
refuse `alpine:3.20` and let `alpine*` allow `alpine.evil.com/miner:1`; both sides are compared
normalised instead, with JES's glob syntax kept for the entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from executor.config.glob import SPECIAL

DEFAULT_REGISTRY = "docker.io"
OFFICIAL_NAMESPACE = "library"
# A pre-release tag (`1.2.0-rc.1`, `v0.2.0-alpha`) can be pushed again: it must be pulled again.
# (The oda-canvas image convention: `<major>.<minor>.<patch>-<prerelease suffix>`.)
PRE_RELEASE_TAG = re.compile(r"^v?\d+\.\d+\.\d+-[0-9A-Za-z.-]+$")


@dataclass(frozen=True)
class ImageRef:
    registry: str
    path: str
    tag: str  # "" when none was written
    digest: str  # "sha256:..." or ""

    def normalised(self) -> str:
        text = f"{self.registry}/{self.path}"
        if self.tag or not self.digest:
            text += f":{self.tag or 'latest'}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _is_registry(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost"


def parse_image(image: str) -> ImageRef:
    rest, _, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = ""
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
    first, sep, remainder = rest.partition("/")
    if sep and _is_registry(first):
        registry, path = first, remainder
    else:
        registry, path = DEFAULT_REGISTRY, rest
    if registry == "index.docker.io":
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    return ImageRef(registry, path, tag, digest)


def normalise_image(image: str) -> str:
    return parse_image(image).normalised()


def _has_glob(text: str) -> bool:
    return any(c in SPECIAL for c in text)


def normalise_entry(entry: str) -> str:
    """An allow-list glob in the normalised form of the images it means.

    The registry is implied as it is for images, unless the first part of the entry is a glob
    (`*/my-user/*`: written to span registries, kept as written). `library/` is implied for a
    one-part name on docker.io, except where a `*` in the name can itself span paths and the
    registry was written (`docker.io/*` means all of docker.io). A last part without a tag
    means `:latest`, as for an image, unless a `*` in it can already cover the tag.
    """
    first, sep, remainder = entry.partition("/")
    explicit = bool(sep) and (_is_registry(first) or _has_glob(first))
    registry, path = (first, remainder) if explicit else (DEFAULT_REGISTRY, entry)
    if registry == "index.docker.io":
        registry = DEFAULT_REGISTRY
    name = path.split("*", 1)[0]
    star_in_name = "*" in path and ":" not in name
    if registry == DEFAULT_REGISTRY and "/" not in name and not (explicit and star_in_name):
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    last = path.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last and "*" not in last:
        path += ":latest"
    return f"{registry}/{path}"


def reaches_into_registry(entry: str) -> bool:
    """Whether a glob in the entry's first part can match a registry host, e.g. `alpine*`
    (written for alpine tags, but as JES compared it, also `alpine.evil.com/miner`)."""
    first = entry.split("/", 1)[0]
    return _has_glob(first)


def is_pre_release(image: str) -> bool:
    return bool(PRE_RELEASE_TAG.match(parse_image(image).tag))


def pull_policy_for(image: str) -> str:
    """`Always` for a pre-release tag (it may be rebuilt), `IfNotPresent` otherwise."""
    return "Always" if is_pre_release(image) else "IfNotPresent"
