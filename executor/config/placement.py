"""The task fields that say where its pod runs, `nodeSelector` and `tolerations`, read with the
checks the API server applies (support/podspec.py), each mistake at its line."""

from __future__ import annotations

from typing import Any

from executor.config.fieldreader import FieldReader
from executor.config.yamlload import Path
from executor.support import podspec


def node_selector(reader: FieldReader, obj: dict[str, Any], path: Path) -> dict[str, str]:
    """`nodeSelector: {disktype: ssd}`: node labels the pod's node must have."""
    raw = obj.get("nodeSelector")
    if raw is None:
        return {}
    if isinstance(raw, dict):  # YAML reads `zone: 1` as a number; a label value is text
        raw = {
            k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for k, v in raw.items()
        }
    problems = podspec.node_selector_problems(raw, "nodeSelector")
    for problem in problems:
        reader.error((*path, "nodeSelector"), problem)
    return dict(raw) if not problems else {}


def tolerations(reader: FieldReader, obj: dict[str, Any], path: Path) -> tuple[dict[str, Any], ...]:
    """`tolerations: [{key: gpu, operator: Exists, effect: NoSchedule}]`: taints the pod tolerates."""
    raw = obj.get("tolerations")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        reader.error((*path, "tolerations"), "'tolerations' must be a list of tolerations")
        return ()
    found = []
    for i, item in enumerate(raw):
        problems = podspec.toleration_problems(item, f"tolerations[{i}]")
        for problem in problems:
            reader.error((*path, "tolerations", i), problem)
        if not problems:
            found.append(dict(item))
    return tuple(found)
