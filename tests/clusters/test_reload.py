"""SIGHUP reads CLUSTERS_FILE again; a file that does not validate keeps the clusters as they were."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from executor.app.service import Service
from executor.settings import Settings
from tests.clusters.conftest import Fleet


async def test_a_bad_file_keeps_the_old_clusters_and_says_why(
    fleet_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fleet: Fleet = await fleet_factory({"a": 2, "b": 2})
    settings = Settings.from_env(
        {
            "BACKEND": "kubernetes",
            "CLUSTERS_FILE": str(fleet.file),
            "JOB_NAMESPACE": "jobs",
            "STATE_DIR": str(tmp_path / "state"),
        }
    )
    service = Service(settings)
    assert service.clusters is not None
    before = service.clusters.clusters
    good = fleet.file.read_text()
    fleet.file.write_text(good + "- name: c\n  maxConcurrentJobs: -1\n")
    with caplog.at_level(logging.ERROR):
        assert await service.reload_clusters() is False
    assert service.clusters.clusters is before
    assert f"{fleet.file}:" in caplog.text and "maxConcurrentJobs -1" in caplog.text
    # a good file replaces the view whole; the one a task already holds does not change
    fleet.file.write_text(good.replace("maxConcurrentJobs: 2", "maxConcurrentJobs: 7"))
    assert await service.reload_clusters() is True
    assert [c.max_concurrent_jobs for c in service.clusters.clusters.members] == [7, 7]
    assert [c.max_concurrent_jobs for c in before.members] == [2, 2]
    # moving a known cluster elsewhere needs a restart
    fleet.file.write_text(good.replace("a.kubeconfig", "elsewhere.kubeconfig"))
    assert await service.reload_clusters() is False
    assert "changed its kubeconfig" in caplog.text
    await service.backend.close()
    service.store.close()
