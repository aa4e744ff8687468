"""What the Keptn API client sends and receives: resources, subscriptions, integration metadata."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The SDK reports this for the bridge; it has no other meaning (go-utils pkg/sdk/keptn.go).
DISTRIBUTOR_VERSION = "0.15.0"


@dataclass(frozen=True)
class Resource:
    uri: str
    content: bytes
    version: str = ""  # metadata.version: the git commit the content was read at


@dataclass(frozen=True)
class Subscription:
    """An event type the integration receives; filters narrow it to projects/stages/services."""

    event: str
    projects: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    id: str = ""

    def to_json(self) -> dict[str, Any]:
        # The SDK leaves unused filters null; an empty list for services without stages is refused.
        return {
            "event": self.event,
            "filter": {
                "projects": list(self.projects) or None,
                "stages": list(self.stages) or None,
                "services": list(self.services) or None,
            },
        }

    @classmethod
    def from_json(cls, raw: Any) -> Subscription | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("event"), str) or not raw["event"]:
            return None
        flt = raw.get("filter")
        if not isinstance(flt, dict):
            flt = {}
        return cls(
            event=raw["event"],
            projects=_strings(flt.get("projects")),
            stages=_strings(flt.get("stages")),
            services=_strings(flt.get("services")),
            id=str(raw.get("id") or ""),
        )


# What IntegrationMetadata.from_env reads (the chart sets them from the downward API).
METADATA_ENV_VARS = frozenset(
    {"K8S_NODE_NAME", "K8S_NAMESPACE", "K8S_POD_NAME", "K8S_DEPLOYMENT_NAME", "LOCATION"}
)


@dataclass(frozen=True)
class IntegrationMetadata:
    hostname: str
    namespace: str
    pod_name: str = ""
    deployment_name: str = ""
    location: str = "remote-execution-plane"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IntegrationMetadata:
        """The names the Keptn Go SDK reads (go-utils pkg/sdk/internal/config/config.go)."""
        env = os.environ if env is None else env
        return cls(
            hostname=env.get("K8S_NODE_NAME") or socket.gethostname() or "localhost",
            namespace=env.get("K8S_NAMESPACE") or "default",
            pod_name=env.get("K8S_POD_NAME", ""),
            deployment_name=env.get("K8S_DEPLOYMENT_NAME", ""),
            location=env.get("LOCATION") or "remote-execution-plane",
        )

    def to_json(self, version: str) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "integrationversion": version,
            "distributorversion": DISTRIBUTOR_VERSION,
            "location": self.location,
            "kubernetesmetadata": {
                "namespace": self.namespace,
                "podname": self.pod_name,
                "deploymentname": self.deployment_name,
            },
        }


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str) and v)
