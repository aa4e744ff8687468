"""Issue 16 (3): the read API answers as its OpenAPI document says, checked by schemathesis
against a running `serve` (with runs in its history, and its bearer token)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.observe.servers import SyncServe, serving

TOKEN = "api-test-token"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncServe]:
    tmp: Path = tmp_path_factory.mktemp("api")
    with serving(tmp, {"RCV_AUTH_TOKEN": TOKEN}) as serve:
        serve.post_event("schema-1")
        serve.wait_run()
        yield serve


def test_api_conforms_to_its_openapi_document(served: SyncServe) -> None:
    schema = schemathesis.openapi.from_url(f"{served.base}/api/v1/openapi.json", headers=served.headers())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 4

    for operation in operations:

        @given(operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=served.headers())

        check()


def test_the_document_is_served_and_the_api_asks_for_the_token(served: SyncServe) -> None:
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(f"{served.base}/api/v1/openapi.json") as response:
        assert "/api/v1/runs" in response.read().decode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{served.base}/api/v1/runs")
    assert refused.value.code == 401
