"""Fixtures shared by every test directory."""

from collections.abc import Iterator

import pytest

from tests.service.conftest import Serve, sink  # noqa: F401 - the recording HTTP sink, a fixture


@pytest.fixture(autouse=True)
def _no_service_outlives_its_test() -> Iterator[None]:
    yield
    for serve in Serve.started:
        serve.kill()
    Serve.started.clear()
