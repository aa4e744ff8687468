"""What a container of a pod would see once the kubelet has set it up: its environment and the
files of its volume mounts. The fake API server runs no containers; this lets a test ask of a
Job what a task in it is given, and compare that with what the local backend gives the same task.

Each rule follows the kubelet (kubernetes/kubernetes, release-1.33):
- env: pkg/kubelet/kubelet_pods.go makeEnvironmentVariables. `envFrom` sources first, in order
  (a later source's key replaces an earlier one's), then every `env` entry in order, replacing
  what `envFrom` set; `$(VAR)` in a value expands against what is defined so far
  (third_party/forked/golang/expansion/expand.go: `$$` is a literal `$`, an unknown name stays
  as written). A missing Secret or key that is not `optional` fails the container
  (CreateContainerConfigError), as `KubeletError` here.
- downwardAPI volumes: pkg/volume/downwardapi/downwardapi.go CollectData, with the field paths of
  pkg/fieldpath/fieldpath.go ExtractFieldPathAsString (metadata.annotations['k'],
  metadata.labels['k'], metadata.name, metadata.namespace, metadata.uid). A missing annotation
  is an empty file.
- configMap and secret volumes: pkg/volume/configmap/configmap.go and pkg/volume/secret/secret.go
  MakePayload: every key (data, binaryData; a Secret's data is base64), or only `items`; the
  file mode is the item's `mode`, else `defaultMode`, else 0644 (pkg/apis/core/v1/defaults.go).
- subPath: pkg/kubelet/kubelet_pods.go makeMounts mounts that one entry of the volume at
  mountPath.
An emptyDir holds what containers write into it, which is not modelled: it shows no files.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
DEFAULT_MODE = 0o644
_FIELD = re.compile(r"^metadata\.(annotations|labels)\['(.+)'\]$")
_VAR = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


class KubeletError(Exception):
    """The container could not be set up (CreateContainerConfigError, FailedMount)."""


@dataclass(frozen=True)
class File:
    data: bytes
    mode: int


@dataclass(frozen=True)
class ContainerView:
    env: dict[str, str]
    files: dict[str, File]  # absolute path in the container -> file


Lookup = Callable[[str, str], Obj | None]  # (kind: "secrets" | "configmaps", name) -> object


def container_view(pod: Obj, container: str, lookup: Lookup) -> ContainerView:
    spec = pod["spec"]
    found = [c for c in spec.get("containers") or [] if c["name"] == container]
    if not found:
        raise KubeletError(f"no container {container!r} in the pod")
    c = found[0]
    return ContainerView(_env(c, pod, lookup), _files(c, pod, lookup))


def _env(c: Obj, pod: Obj, lookup: Lookup) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in c.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("secrets", "secretRef"), ("configmaps", "configMapRef")):
            ref = source.get(key)
            if ref is None:
                continue
            obj = lookup(kind, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise KubeletError(f"{kind[:-1]} {ref['name']!r} not found")
            for name, value in _payload(kind, obj).items():
                env[prefix + name] = value.decode()
    for entry in c.get("env") or []:
        if "value" in entry or "valueFrom" not in entry:
            env[entry["name"]] = _expand(entry.get("value", ""), env)
            continue
        source = entry["valueFrom"]
        if "fieldRef" in source:
            env[entry["name"]] = _field(pod, source["fieldRef"]["fieldPath"])
            continue
        kind, ref = (
            ("secrets", source.get("secretKeyRef"))
            if "secretKeyRef" in source
            else (
                "configmaps",
                source.get("configMapKeyRef"),
            )
        )
        if ref is None:
            raise KubeletError(f"env {entry['name']}: a valueFrom this model does not know: {source}")
        obj = lookup(kind, ref["name"])
        payload = _payload(kind, obj) if obj is not None else {}
        if ref["key"] not in payload:
            if ref.get("optional"):
                continue
            raise KubeletError(
                f"env {entry['name']}: {kind[:-1]} {ref['name']!r} key {ref['key']!r} not found"
            )
        env[entry["name"]] = payload[ref["key"]].decode()
    return env


def _expand(text: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR.sub(replace, text)


def _field(pod: Obj, path: str) -> str:
    meta = pod["metadata"]
    match = _FIELD.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    names = {"metadata.name": "name", "metadata.namespace": "namespace", "metadata.uid": "uid"}
    if path not in names:
        raise KubeletError(f"field path {path!r} is not supported by the downward API")
    return str(meta.get(names[path], ""))


def _payload(kind: str, obj: Obj) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key, value in (obj.get("data") or {}).items():
        out[key] = base64.b64decode(value) if kind == "secrets" else value.encode()
    for key, value in (obj.get("binaryData") or {}).items():
        out[key] = base64.b64decode(value)
    return out


def _volume_files(volume: Obj, pod: Obj, lookup: Lookup) -> dict[str, File]:
    """Relative path in the volume -> file."""
    if "emptyDir" in volume:
        return {}
    if "downwardAPI" in volume:
        source = volume["downwardAPI"]
        default = source.get("defaultMode", DEFAULT_MODE)
        return {
            item["path"]: File(_field(pod, item["fieldRef"]["fieldPath"]).encode(), item.get("mode", default))
            for item in source.get("items") or []
        }
    for kind, key, name_key in (("configmaps", "configMap", "name"), ("secrets", "secret", "secretName")):
        if key not in volume:
            continue
        source = volume[key]
        obj = lookup(kind, source[name_key])
        if obj is None:
            if source.get("optional"):
                return {}
            raise KubeletError(f"{kind[:-1]} {source[name_key]!r} not found (FailedMount)")
        payload = _payload(kind, obj)
        default = source.get("defaultMode", DEFAULT_MODE)
        items = source.get("items")
        if items is None:
            return {k: File(v, default) for k, v in payload.items()}
        out = {}
        for item in items:
            if item["key"] not in payload:
                raise KubeletError(
                    f"{kind[:-1]} {source[name_key]!r} has no key {item['key']!r} (FailedMount)"
                )
            out[item["path"]] = File(payload[item["key"]], item.get("mode", default))
        return out
    raise KubeletError(f"volume {volume['name']!r}: a kind this model does not know")


def _files(c: Obj, pod: Obj, lookup: Lookup) -> dict[str, File]:
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    files: dict[str, File] = {}
    for mount in c.get("volumeMounts") or []:
        content = _volume_files(volumes[mount["name"]], pod, lookup)
        target = mount["mountPath"].rstrip("/")
        sub = mount.get("subPath")
        if sub:
            if sub in content:
                files[target] = content[sub]
            else:  # a folder of the volume
                files.update(
                    {
                        f"{target}/{p[len(sub) + 1 :]}": f
                        for p, f in content.items()
                        if p.startswith(sub + "/")
                    }
                )
        else:
            files.update({f"{target}/{p}": f for p, f in content.items()})
    return files


def fake_lookup(api: Any, namespace: str) -> Lookup:
    """Secrets and ConfigMaps from the fake API server (tests/kubeapi/server.py)."""
    return lambda kind, name: api.get(kind, namespace, name)


def manifest_lookup(objects: list[Obj]) -> Lookup:
    """Secrets and ConfigMaps from a list of manifests (what `render` printed, plus test Secrets)."""
    kinds = {"Secret": "secrets", "ConfigMap": "configmaps"}
    table = {(kinds[o["kind"]], o["metadata"]["name"]): o for o in objects if o.get("kind") in kinds}
    return lambda kind, name: table.get((kind, name))


def template_pod(job: Obj) -> Obj:
    """The pod a Job's template makes (what the Job controller copies)."""
    template = job["spec"]["template"]
    return {
        "metadata": {**template.get("metadata", {}), "namespace": job["metadata"]["namespace"]},
        "spec": template["spec"],
    }
