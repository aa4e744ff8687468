"""The kubelet model (kubelet.py) against the rules it cites."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.kubeapi.kubelet import KubeletError, container_view, manifest_lookup


def _secret(name: str, **keys: str) -> dict[str, Any]:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in keys.items()}
    return {"kind": "Secret", "metadata": {"name": name}, "data": data}


def _pod(container: dict[str, Any], volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    meta = {"name": "p", "namespace": "ns", "annotations": {"a/b": "annotated"}}
    return {"metadata": meta, "spec": {"containers": [{"name": "c", **container}], "volumes": volumes or []}}


def test_env_entries_win_over_env_from_and_later_sources_over_earlier() -> None:
    pod = _pod(
        {
            "envFrom": [{"secretRef": {"name": "one"}}, {"secretRef": {"name": "two"}, "prefix": "P_"}],
            "env": [{"name": "K", "value": "literal"}, {"name": "E", "value": "$(K)-$$(K)-$(NONE)"}],
        }
    )
    lookup = manifest_lookup([_secret("one", K="one", X="x"), _secret("two", K="two")])
    env = container_view(pod, "c", lookup).env
    assert env == {"K": "literal", "X": "x", "P_K": "two", "E": "literal-$(K)-$(NONE)"}


def test_a_missing_secret_fails_the_container_unless_optional() -> None:
    pod = _pod({"envFrom": [{"secretRef": {"name": "gone"}}]})
    with pytest.raises(KubeletError, match="'gone' not found"):
        container_view(pod, "c", manifest_lookup([]))
    optional = _pod({"envFrom": [{"secretRef": {"name": "gone", "optional": True}}]})
    assert container_view(optional, "c", manifest_lookup([])).env == {}


def test_volume_files_with_modes_and_sub_paths() -> None:
    volumes = [
        {
            "name": "d",
            "downwardAPI": {
                "items": [{"path": "x", "fieldRef": {"fieldPath": "metadata.annotations['a/b']"}}]
            },
        },
        {"name": "s", "secret": {"secretName": "one", "defaultMode": 0o400}},
    ]
    mounts = [{"name": "d", "mountPath": "/k/x.json", "subPath": "x"}, {"name": "s", "mountPath": "/etc/s/"}]
    pod = _pod({"volumeMounts": mounts}, volumes)
    files = container_view(pod, "c", manifest_lookup([_secret("one", K="v")])).files
    assert {p: (f.data, f.mode) for p, f in files.items()} == {
        "/k/x.json": (b"annotated", 0o644),
        "/etc/s/K": (b"v", 0o400),
    }
