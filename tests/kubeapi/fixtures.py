"""Pytest fixtures for the fake Kubernetes API server.

Enable in a test module (or the root conftest) with::

    pytest_plugins = ["tests.kubeapi.fixtures"]

Fixtures (all function-scoped, async ones run in the test's event loop):

* ``kube_api`` -> ``FakeKubeAPI``: the server, started. Options (any ``FakeKubeAPI``
  keyword) by indirect parametrization::

      @pytest.mark.parametrize("kube_api", [{"auto_complete": (0.05, "succeeded")}], indirect=True)

  (a marker would need registering before the test module is imported). Namespaces: those of a
  fresh cluster plus ``TEST_NAMESPACES``, or plus the ones the test declares with
  ``{"namespaces": ["ns-a"]}``; a create into any other is 404 as on a cluster. RBAC: the
  kubeconfig's token is all-allowed; ``api.add_user(token, name, {ns: Role.of(...)})`` declares
  a narrower one (write a kubeconfig for it with ``api.write_kubeconfig(path, token=token)``).
  At teardown it fails the test if the fake itself hit a bug
  (``server_errors``); 422s the code under test provoked are in ``validation_errors``.
* ``kube_config_file`` -> ``pathlib.Path``: a kubeconfig for ``kube_api`` (namespace
  "default"), e.g. for ``KUBECONFIG``.
* ``kube_api_client`` -> ``kubernetes_asyncio.client.ApiClient``: configured from that file by
  ``kubernetes_asyncio.config.load_kube_config`` (the real config loading path), closed after.
* ``kube_api_factory`` -> ``async (**options) -> FakeKubeAPI``: more servers, stopped after.

A conftest below the root directory cannot use ``pytest_plugins``; it can import the fixtures
by name instead (``from tests.kubeapi.fixtures import kube_api, kube_api_client  # noqa: F401``).
PYTEST_DONT_REWRITE: no asserts here, and the module may be imported before pytest registers it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration

from tests.kubeapi.access import CLUSTER_NAMESPACES
from tests.kubeapi.server import FakeKubeAPI

KubeAPIFactory = Callable[..., Awaitable[FakeKubeAPI]]
# The namespaces the tests use, besides a fresh cluster's; a test that declares its own
# (``{"namespaces": [...]}``) gets a fresh cluster's and those only.
TEST_NAMESPACES = ("jobs", "keptn", "elsewhere", "team-a", "team-b")


def _with_namespaces(options: dict[str, Any]) -> dict[str, Any]:
    declared = options.get("namespaces")
    namespaces = TEST_NAMESPACES if declared is None else tuple(declared)
    return {**options, "namespaces": (*CLUSTER_NAMESPACES, *namespaces)}


def _check_clean(api: FakeKubeAPI) -> None:
    if api.server_errors:
        pytest.fail("the fake Kubernetes API server failed:\n" + "\n".join(api.server_errors))


@pytest.fixture
async def kube_api(request: pytest.FixtureRequest) -> AsyncIterator[FakeKubeAPI]:
    options: dict[str, Any] = dict(getattr(request, "param", None) or {})
    api = FakeKubeAPI(**_with_namespaces(options))
    await api.start()
    try:
        yield api
    finally:
        await api.stop()
    _check_clean(api)


@pytest.fixture
def kube_config_file(kube_api: FakeKubeAPI, tmp_path: Path) -> Path:
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
async def kube_api_client(kube_config_file: Path) -> AsyncIterator[ApiClient]:
    configuration = Configuration()
    await kube_config.load_kube_config(config_file=str(kube_config_file), client_configuration=configuration)
    async with ApiClient(configuration=configuration) as api_client:
        yield api_client


@pytest.fixture
async def kube_api_factory() -> AsyncIterator[KubeAPIFactory]:
    servers: list[FakeKubeAPI] = []

    async def make(**options: Any) -> FakeKubeAPI:
        api = FakeKubeAPI(**_with_namespaces(options))
        await api.start()
        servers.append(api)
        return api

    try:
        yield make
    finally:
        for api in servers:
            await api.stop()
    for api in servers:
        _check_clean(api)
