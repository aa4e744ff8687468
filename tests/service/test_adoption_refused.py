"""A refused list of running tasks at start (a 403: the Role does not cover the namespace) is
said, and the service serves anyway (issue 13 item 15)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiohttp
import pytest

from executor.app.service import Service
from executor.backends.kubernetes.api import ApiError
from executor.model.tasks import Adopted, TaskHandle, TaskOutcome, TaskSpec
from executor.settings import Settings


class ForbiddenBackend:
    name = "kubernetes"

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def submit(self, spec: TaskSpec, files: Mapping[str, bytes]) -> TaskHandle:
        raise AssertionError("no event was sent")

    async def wait(self, handle: TaskHandle, spec: TaskSpec) -> TaskOutcome:
        raise AssertionError("no event was sent")

    async def cancel(self, handle: TaskHandle) -> None:
        pass

    async def adopt(self) -> list[Adopted]:
        raise ApiError(
            'listing Jobs in namespace "other": 403 Forbidden: jobs.batch is forbidden', 403, "Forbidden"
        )

    async def discard(self, names: Sequence[str]) -> None:
        pass


async def test_a_403_while_adopting_at_start_does_not_stop_the_service(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings().with_overrides(receiver={"port": 0}, state={"dir": tmp_path / "state"})
    service = Service(settings, backend=ForbiddenBackend())
    caplog.set_level(logging.ERROR)
    await service.start()
    try:
        url = f"http://127.0.0.1:{service.port}/healthz"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
        assert "cannot list running tasks to adopt them" in caplog.text
        assert "403 Forbidden" in caplog.text
    finally:
        await service.stop()
