"""The action field `concurrency` against fake Kubernetes API servers (two clusters of a
CLUSTERS_FILE): queue creates the next Job of a key only when the one before has ended, skip
creates none, cancel-previous deletes the running Job before it creates the new one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from executor.backends.kubernetes.clusters import MultiClusterBackend
from executor.backends.naming import job_name
from executor.concurrency import WAITING_GAUGE
from executor.model.events import Event, event_from_mapping
from executor.pipeline import Pipeline
from executor.resolvers.local import LocalTreeResolver
from executor.settings import Settings
from tests.clusters.conftest import NAMESPACE, Fleet, eventually
from tests.service.conftest import make_event, write_config

CONFIG = """\
apiVersion: v2
actions:
  - name: "Deploy"
    events: [{name: "sh.keptn.event.deployment.triggered"}]
    concurrency: {limit: 1, key: "$.data.labels.target", onConflict: MODE}
    tasks: [{name: "deploy", image: "alpine:3.20", namespace: NAMESPACE, cmd: ["true"]}]
"""


class Reports:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def put(self, event: Any) -> None:
        self.events.append(dict(event))

    def finished(self, event_id: str) -> dict[str, Any]:
        found = [e for e in self.events if e["type"].endswith(".finished") and e["triggeredid"] == event_id]
        assert len(found) == 1, found
        data: dict[str, Any] = found[0]["data"]
        return data


class Setup:
    def __init__(self, fleet: Fleet, backend: MultiClusterBackend, tmp: Path, mode: str) -> None:
        write_config(tmp, CONFIG.replace("MODE", mode).replace("NAMESPACE", NAMESPACE))
        self.fleet = fleet
        self.reports = Reports()
        self.pipeline = Pipeline(
            Settings(),
            LocalTreeResolver(tmp / "resources"),
            backend,
            fleet.store,
            self.reports,
            fleet.metrics,
        )
        self.runs: dict[str, asyncio.Task[bool]] = {}

    def post(self, event_id: str, target: str) -> None:
        event: Event = event_from_mapping(
            make_event("sh.keptn.event.deployment.triggered", event_id=event_id, labels={"target": target})
        )
        self.fleet.store.accept(event.source, event.id, event.to_json())
        self.runs[event_id] = asyncio.create_task(self.pipeline.handle(event))

    def where(self, event_id: str) -> str | None:
        job = job_name(event_id, "tests", 0, 1)
        return next((name for name in self.fleet.servers if job in self.fleet.jobs(name)), None)

    def end(self, event_id: str) -> None:
        cluster = self.where(event_id)
        assert cluster is not None, f"no Job of {event_id}"
        self.fleet.servers[cluster].set_job_succeeded(NAMESPACE, job_name(event_id, "tests", 0, 1))

    def all_jobs(self) -> int:
        return sum(len(self.fleet.jobs(name)) for name in self.fleet.servers)


async def test_queue_creates_the_next_job_of_a_key_only_after_the_last_ended(
    fleet_factory: Any, tmp_path: Path
) -> None:
    fleet: Fleet = await fleet_factory({"a": 2, "b": 2})
    run = Setup(fleet, await fleet.backend(), tmp_path, "queue")
    run.post("a1", "prod")
    await eventually(lambda: run.where("a1"), what="a1's Job")
    run.post("a2", "prod")
    await eventually(lambda: fleet.metrics.read_gauge(WAITING_GAUGE) == 1, what="a2 waiting")
    run.post("b1", "staging")
    await eventually(lambda: run.where("b1"), what="b1's Job (another key)")
    assert run.where("a2") is None and run.all_jobs() == 2
    run.end("a1")
    await eventually(lambda: run.where("a2"), what="a2's Job once a1 ended")
    run.end("a2")
    run.end("b1")
    assert all(await asyncio.gather(*run.runs.values()))
    assert [run.reports.finished(i)["status"] for i in ("a1", "a2", "b1")] == ["succeeded"] * 3


async def test_skip_creates_no_job_for_the_colliding_event(fleet_factory: Any, tmp_path: Path) -> None:
    fleet: Fleet = await fleet_factory({"a": 2, "b": 2})
    run = Setup(fleet, await fleet.backend(), tmp_path, "skip")
    run.post("a1", "prod")
    await eventually(lambda: run.where("a1"), what="a1's Job")
    run.post("a2", "prod")
    assert await run.runs["a2"] is False
    skipped = run.reports.finished("a2")
    assert skipped["status"] == "errored" and "skipped" in skipped["message"] and "a1" in skipped["message"]
    assert run.where("a2") is None and run.all_jobs() == 1
    run.end("a1")
    assert await run.runs["a1"] is True


async def test_cancel_previous_deletes_the_running_job_then_creates_the_new_one(
    fleet_factory: Any, tmp_path: Path
) -> None:
    fleet: Fleet = await fleet_factory({"a": 2, "b": 2})
    run = Setup(fleet, await fleet.backend(), tmp_path, "cancel-previous")
    run.post("a1", "prod")
    run.post("b1", "staging")
    await eventually(lambda: run.where("a1") and run.where("b1"), what="a1's and b1's Jobs")
    run.post("a2", "prod")
    assert await run.runs["a1"] is False
    cancelled = run.reports.finished("a1")
    assert cancelled["status"] == "errored" and "cancelled" in cancelled["message"], cancelled["message"]
    assert "a2" in cancelled["message"]
    await eventually(lambda: run.where("a2"), what="a2's Job")
    assert run.where("a1") is None  # deleted from its cluster
    run.end("a2")
    run.end("b1")  # the other key's Job was left alone
    assert await run.runs["a2"] is True and await run.runs["b1"] is True
    assert run.reports.finished("b1")["status"] == "succeeded"
