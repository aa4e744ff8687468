"""Fixtures: the Keptn double behind real nginx (Keptn's gateway rules), in the test's loop, and
production clients pointed at the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from executor.keptn.api import KeptnAPI
from executor.keptn.models import IntegrationMetadata
from tests.keptn.double.gateway import nginx_binary
from tests.keptn.fake_keptn import FakeKeptn

PROJECT, STAGE, SERVICE = "sockshop", "dev", "carts"
METADATA = IntegrationMetadata(hostname="node-1", namespace="keptn-exec", pod_name="job-executor-0")


@pytest.fixture
async def keptn(tmp_path: Path) -> AsyncIterator[FakeKeptn]:
    if nginx_binary() is None:
        pytest.fail("nginx is required for the Keptn tests (.ci/run installs it: apt-get install nginx)")
    fake = FakeKeptn()
    await fake.start(tmp_path / "gateway")
    fake.add_project(PROJECT, {STAGE: [SERVICE, "orders"], "prod": [SERVICE]})
    yield fake
    await fake.stop()


@pytest.fixture
async def api(keptn: FakeKeptn) -> AsyncIterator[KeptnAPI]:
    client = KeptnAPI(keptn.url, keptn.token, timeout=5.0, retries=2, backoff=0.01, max_backoff=0.05)
    yield client
    await client.close()


@pytest.fixture
async def bad_api(keptn: FakeKeptn) -> AsyncIterator[KeptnAPI]:
    client = KeptnAPI(keptn.url, "wrong-token", timeout=5.0, retries=2, backoff=0.01, max_backoff=0.05)
    yield client
    await client.close()
