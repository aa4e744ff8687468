"""Fixtures: the fake Keptn API in the test's loop, and production clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from executor.keptn.api import KeptnAPI
from executor.keptn.models import IntegrationMetadata
from tests.keptn.fake_keptn import FakeKeptn

PROJECT, STAGE, SERVICE = "sockshop", "dev", "carts"
METADATA = IntegrationMetadata(hostname="node-1", namespace="keptn-exec", pod_name="job-executor-0")


@pytest.fixture
async def keptn() -> AsyncIterator[FakeKeptn]:
    fake = FakeKeptn()
    await fake.start()
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
