"""Service settings, read once from environment variables (names kept from job-executor-service).

Each setting is declared once, as a field of its group: the variable's name, its default, how
its text is read and a line of help (`env(...)`). `Settings.from_env`, `ENV_VARS`, the README's
settings table (`python -m executor.settings`) and the chart's test all come from those fields.
Every setting has a safe default, so `job-executor serve` with an empty environment runs the
embedded default: HTTP on localhost, the local backend, configs from ./samples.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from executor.settings.running import (
    ClusterSettings,
    JobSettings,
    KubernetesSettings,
    LocalSettings,
    ResourceDefaults,
)
from executor.settings.serving import (
    ConfigSettings,
    DispatchSettings,
    KeptnSettings,
    NatsSettings,
    ObserveSettings,
    ReceiverSettings,
    ReportSettings,
    StateSettings,
)
from executor.settings.tasks import TaskDefaults
from executor.support import envvars
from executor.support.envvars import SettingsError

GROUPS: dict[str, type] = {
    "jobs": JobSettings,
    "resources": ResourceDefaults,
    "defaults": TaskDefaults,
    "config": ConfigSettings,
    "keptn": KeptnSettings,
    "reporting": ReportSettings,
    "nats": NatsSettings,
    "local": LocalSettings,
    "receiver": ReceiverSettings,
    "dispatch": DispatchSettings,
    "state": StateSettings,
    "kubernetes": KubernetesSettings,
    "clusters": ClusterSettings,
    "observe": ObserveSettings,
}


@dataclass(frozen=True)
class Settings:
    jobs: JobSettings = field(default_factory=JobSettings)
    resources: ResourceDefaults = field(default_factory=ResourceDefaults)
    defaults: TaskDefaults = field(default_factory=TaskDefaults)
    config: ConfigSettings = field(default_factory=ConfigSettings)
    keptn: KeptnSettings = field(default_factory=KeptnSettings)
    reporting: ReportSettings = field(default_factory=ReportSettings)
    nats: NatsSettings = field(default_factory=NatsSettings)
    local: LocalSettings = field(default_factory=LocalSettings)
    receiver: ReceiverSettings = field(default_factory=ReceiverSettings)
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    state: StateSettings = field(default_factory=StateSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    clusters: ClusterSettings = field(default_factory=ClusterSettings)
    observe: ObserveSettings = field(default_factory=ObserveSettings)

    @property
    def remote_plane(self) -> bool:
        """Running as a Keptn remote execution plane (poll the control plane's API)."""
        return bool(self.keptn.api_endpoint and self.keptn.pubsub_topic)

    def check(self) -> None:
        """Combinations that cannot work, refused at start with what to set."""
        if self.config.source == "keptn" and not self.keptn.api_endpoint:
            raise SettingsError("CONFIG_SOURCE=keptn needs KEPTN_API_ENDPOINT (for example http://keptn/api)")
        if self.keptn.pubsub_topic and not self.keptn.api_endpoint:
            raise SettingsError("PUBSUB_TOPIC subscribes through the Keptn API: set KEPTN_API_ENDPOINT too")
        if self.keptn.api_endpoint and not self.keptn.api_token:
            raise SettingsError("KEPTN_API_ENDPOINT is set but KEPTN_API_TOKEN is empty")
        if self.keptn.api_endpoint:
            self.keptn.check()
        if self.kubernetes.leader_election and self.jobs.backend != "kubernetes":
            raise SettingsError("LEADER_ELECTION uses a Kubernetes Lease: set BACKEND=kubernetes too")
        if self.clusters.file is not None and self.jobs.backend != "kubernetes":
            raise SettingsError("CLUSTERS_FILE spreads Jobs over clusters: set BACKEND=kubernetes too")

    def absolute(self) -> Settings:
        """Every path setting made absolute against today's working directory. Paths are used
        from other directories later (a local task's wrapper runs in the task's cwd and was given
        a relative work dir), so they are resolved once, at start."""
        changes = {}
        for name in GROUPS:
            group = getattr(self, name)
            paths = {
                f.name: Path(os.path.abspath(value))
                for f in fields(group)
                if isinstance(value := getattr(group, f.name), Path)
            }
            if paths:
                changes[name] = replace(group, **paths)
        return replace(self, **changes)

    def with_overrides(self, **groups: Mapping[str, Any]) -> Settings:
        """Command-line flags over the environment, by group: `with_overrides(receiver={"port": 9000})`.
        A value of None means 'not given'."""
        changes = {}
        for group, values in groups.items():
            given = {k: v for k, v in values.items() if v is not None}
            if given:
                changes[group] = replace(getattr(self, group), **given)
        return replace(self, **changes)

    def secret_values(self) -> list[str]:
        """The values of every secret setting (tokens): the log masks them wherever they appear."""
        found = []
        for name in GROUPS:
            group = getattr(self, name)
            found += [getattr(group, f.name) for f in fields(group) if not f.repr]
        return [value for value in found if isinstance(value, str) and value]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        return cls(**{name: _read_group(group, environ) for name, group in GROUPS.items()})


def _read_group(group: type, environ: Mapping[str, str]) -> Any:
    values = {}
    for f in fields(group):
        raw = environ.get(f.metadata["env"])
        if raw is not None:
            value = f.metadata["parse"](f.metadata["env"], raw)
            if value is not None:
                values[f.name] = value
    return group(**values)


def declared() -> list[tuple[str, Any]]:
    """Every setting's field, group by group, in declaration order: (group name, field)."""
    return envvars.declared(GROUPS)


# Every variable `from_env` reads; the Helm chart test checks it sets only these.
ENV_VARS: frozenset[str] = frozenset(f.metadata["env"] for _, f in declared())


def markdown_table() -> str:
    """The README's settings table, from the declarations."""
    return envvars.markdown_table(GROUPS)
