"""The production Keptn client against the fake: paths, token header, status codes, paging, errors."""

from __future__ import annotations

import logging

import pytest

from executor.keptn.api import KeptnAPI, KeptnAuthError, KeptnRequestError, KeptnUnavailable
from executor.keptn.models import Subscription
from tests.keptn.conftest import METADATA, PROJECT, SERVICE, STAGE
from tests.keptn.fake_keptn import FakeKeptn


async def test_resource_at_each_level_with_the_token_header_and_escaped_uri(
    keptn: FakeKeptn, api: KeptnAPI
) -> None:
    keptn.put(PROJECT, "job/config.yaml", "project", stage="")
    keptn.put(PROJECT, "job/config.yaml", "stage", stage=STAGE)
    head = keptn.put(PROJECT, "job/config.yaml", "service", stage=STAGE, service=SERVICE)

    found = await api.get_resource("job/config.yaml", project=PROJECT, stage=STAGE, service=SERVICE)
    assert found is not None and found.content == b"service" and found.version == head
    stage = await api.get_resource("job/config.yaml", project=PROJECT, stage=STAGE)
    project = await api.get_resource("job/config.yaml", project=PROJECT)
    assert stage is not None and stage.content == b"stage"
    assert project is not None and project.content == b"project"

    paths = [r.path for r in keptn.requests]
    assert paths == [
        f"/api/resource-service/v1/project/{PROJECT}/stage/{STAGE}/service/{SERVICE}/resource/job%252Fconfig.yaml",
        f"/api/resource-service/v1/project/{PROJECT}/stage/{STAGE}/resource/job%252Fconfig.yaml",
        f"/api/resource-service/v1/project/{PROJECT}/resource/job%252Fconfig.yaml",
    ]
    assert all(r.authorised for r in keptn.requests)


async def test_git_commit_id_is_passed_through(keptn: FakeKeptn, api: KeptnAPI) -> None:
    first = keptn.put(PROJECT, "a.txt", "one")
    keptn.put(PROJECT, "a.txt", "two")
    old = await api.get_resource("a.txt", project=PROJECT, commit=first)
    new = await api.get_resource("a.txt", project=PROJECT)
    assert old is not None and old.content == b"one" and old.version == first
    assert new is not None and new.content == b"two"
    assert keptn.requests[0].query == {"gitCommitID": first}
    assert keptn.requests[1].query == {}


async def test_404_is_none_at_every_kind_of_missing(keptn: FakeKeptn, api: KeptnAPI) -> None:
    keptn.put(PROJECT, "a.txt", "x")
    assert await api.get_resource("missing.txt", project=PROJECT) is None
    assert await api.get_resource("a.txt", project="no-such-project") is None
    assert await api.get_resource("a.txt", project=PROJECT, stage="no-stage") is None
    assert await api.get_resource("a.txt", project=PROJECT, commit="0" * 40) is None
    assert await api.list_resources(project="no-such-project") is None


async def test_listing_follows_pages(keptn: FakeKeptn, api: KeptnAPI) -> None:
    for i in range(7):
        keptn.put(PROJECT, f"data/f{i}.txt", str(i), stage=STAGE, service=SERVICE)
    keptn.put(PROJECT, "other.txt", "x", stage=STAGE)  # a stage-level file is not listed
    uris = await api.list_resources(project=PROJECT, stage=STAGE, service=SERVICE, page_size=3)
    assert uris == [f"data/f{i}.txt" for i in range(7)]
    assert [r.query.get("nextPageKey") for r in keptn.requests] == [None, "3", "6"]


async def test_a_wrong_token_is_a_clear_auth_error_and_is_not_retried(
    keptn: FakeKeptn, bad_api: KeptnAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KeptnAuthError) as nginx_guarded:
        await bad_api.get_resource("a.txt", project=PROJECT)
    with pytest.raises(KeptnAuthError) as api_service:
        await bad_api.send_event({"type": "t", "source": "s", "data": {}})
    for exc in (nginx_guarded.value, api_service.value):
        assert str(exc).startswith(f"KEPTN_API_TOKEN was refused by {keptn.url}: check the token")
    assert len(keptn.requests) == 2  # no retries
    assert "wrong-token" not in caplog.text
    assert "wrong-token" not in str(nginx_guarded.value) + str(api_service.value)


async def test_5xx_is_retried_then_unavailable(keptn: FakeKeptn, api: KeptnAPI) -> None:
    keptn.put(PROJECT, "a.txt", "x")
    keptn.fail_next = 2
    found = await api.get_resource("a.txt", project=PROJECT)  # 2 failures, then success
    assert found is not None and found.content == b"x"
    keptn.fail_next = 10
    with pytest.raises(KeptnUnavailable, match=r"is unavailable: GET .* failed 3 time\(s\), last: HTTP 503"):
        await api.get_resource("a.txt", project=PROJECT)


async def test_connection_refused_is_unavailable() -> None:
    api = KeptnAPI("http://127.0.0.1:9/api", "t", retries=1, backoff=0.01)
    try:
        with pytest.raises(KeptnUnavailable, match=r"Keptn API at http://127\.0\.0\.1:9/api is unavailable"):
            await api.ping("abc")
    finally:
        await api.close()


def test_endpoint_must_be_http_and_credentials_are_not_echoed() -> None:
    with pytest.raises(ValueError, match="is not an http"):
        KeptnAPI("keptn.example.com/api")
    api = KeptnAPI("https://user:secret@keptn.example.com/api", "t")
    assert api.endpoint == "https://keptn.example.com/api" and "secret" not in repr(api)


async def test_registration_is_idempotent_and_ping_returns_subscriptions(
    keptn: FakeKeptn, api: KeptnAPI
) -> None:
    subs = [
        Subscription("sh.keptn.event.test.triggered"),
        Subscription("sh.keptn.event.deployment.triggered"),
    ]
    first = await api.register("job-executor", "1.2.3", subs, METADATA)
    again = await api.register("job-executor", "1.2.4", subs, METADATA)
    assert first == again and list(keptn.registrations) == [first]
    stored = keptn.registrations[first]
    assert stored["metadata"]["integrationversion"] == "1.2.4"
    assert stored["metadata"]["kubernetesmetadata"]["namespace"] == "keptn-exec"
    integration = await api.ping(first)
    assert integration is not None
    events = [Subscription.from_json(s) for s in integration["subscriptions"]]
    assert [s.event for s in events if s] == [s.event for s in subs]
    assert all(s and s.id for s in events)
    assert await api.ping("unknown-id") is None
    assert [r["id"] for r in await api.get_registrations("job-executor")] == [first]


async def test_a_refused_registration_is_a_request_error(keptn: FakeKeptn, api: KeptnAPI) -> None:
    with pytest.raises(KeptnRequestError, match="answered 400: at least one stage must be specified"):
        await api.register("job-executor", "1", [Subscription("x", services=("carts",))], METADATA)


async def test_triggered_events_with_filters_and_paging(keptn: FakeKeptn, api: KeptnAPI) -> None:
    for _ in range(5):
        keptn.trigger("sh.keptn.event.test.triggered", PROJECT, STAGE, SERVICE)
    keptn.trigger("sh.keptn.event.test.triggered", PROJECT, "prod", SERVICE)
    keptn.trigger("sh.keptn.event.deployment.triggered", PROJECT, STAGE, SERVICE)
    events = await api.triggered_events(
        "sh.keptn.event.test.triggered", project=PROJECT, stage=STAGE, page_size=2
    )
    assert len(events) == 5 and all(e["data"]["stage"] == STAGE for e in events)
    assert len(await api.triggered_events("sh.keptn.event.test.triggered")) == 6
    assert await api.triggered_events("sh.keptn.event.test.triggered", project="nope") == []
    first = keptn.requests_to("/event/triggered/")[0]
    assert first.path == "/api/controlPlane/v1/event/triggered/sh.keptn.event.test.triggered"
    assert first.query == {"pageSize": "2", "project": PROJECT, "stage": STAGE}


async def test_send_event_and_logs(keptn: FakeKeptn, api: KeptnAPI) -> None:
    t = keptn.trigger("sh.keptn.event.test.triggered", PROJECT, STAGE, SERVICE)
    context = await api.send_event(
        {
            "specversion": "1.0",
            "id": "1",
            "type": "sh.keptn.event.test.started",
            "source": "s",
            "shkeptncontext": t["shkeptncontext"],
            "triggeredid": t["id"],
            "data": {"project": PROJECT, "stage": STAGE, "service": SERVICE},
        }
    )
    # The api-service answers with the context and publishes the event under an id of its own.
    assert context == t["shkeptncontext"] and keptn.received[0]["id"] != "1"
    await api.send_logs([{"integrationid": "i", "message": "m"}])
    await api.send_logs([])  # nothing to send: no request
    assert keptn.logs == [{"integrationid": "i", "message": "m"}]
    assert [r.path for r in keptn.requests] == ["/api/v1/event", "/api/controlPlane/v1/log"]
    with pytest.raises(KeptnRequestError, match="answered 422: data in body is required"):
        await api.send_event({"type": "t"})


async def test_a_refused_token_then_the_gateways_429_is_still_a_refused_token(
    keptn: FakeKeptn, bad_api: KeptnAPI
) -> None:
    """Issue 11 item 9: the gateway rate-limits the auth checks of a refused token, so the
    third request in a second is a 429; that is the same refusal, not an outage."""
    for _ in range(4):
        with pytest.raises(KeptnAuthError, match="KEPTN_API_TOKEN was refused"):
            await bad_api.triggered_events("sh.keptn.event.test.triggered")
    statuses = [r.authorised for r in keptn.requests]
    assert len(statuses) == 4 and not any(statuses)  # and no retries of the 429s


async def test_redirects_are_not_followed_with_the_token() -> None:
    """Issue 13 item 7: a redirect would carry x-token to its target; it is reported instead."""
    from aiohttp import web

    seen: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        seen.append(request.path)
        raise web.HTTPFound("http://user:pw@evil.example.com:8443/steal?x=1")

    async def target(request: web.Request) -> web.Response:  # pragma: no cover - must not be hit
        seen.append("followed " + request.headers.get("x-token", ""))
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/api/controlPlane/v1/uniform/registration", redirect)
    app.router.add_get("/steal", target)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    api = KeptnAPI(f"http://127.0.0.1:{port}/api", "secret-token", retries=0)
    try:
        with pytest.raises(KeptnRequestError) as caught:
            await api.get_registrations()
    finally:
        await api.close()
        await runner.cleanup()
    message = str(caught.value)
    assert "answered 302 redirecting to http://evil.example.com:8443/steal (another origin)" in message
    assert "not sent there" in message and "secret-token" not in message and "pw" not in message
    assert seen == ["/api/controlPlane/v1/uniform/registration"]


def test_a_renew_interval_that_lets_keptn_forget_the_registration_is_refused() -> None:
    """Issue 11 item 9: Keptn drops a registration 60 s after its last renewal."""
    from executor.settings import Settings
    from executor.support.envvars import SettingsError

    base = {"KEPTN_API_ENDPOINT": "http://keptn/api", "KEPTN_API_TOKEN": "t", "PUBSUB_TOPIC": "x"}
    Settings.from_env(base).check()
    for renew, poll in (("60", "5"), ("45", "10")):
        settings = Settings.from_env({**base, "KEPTN_RENEW_INTERVAL": renew, "KEPTN_POLL_INTERVAL": poll})
        with pytest.raises(
            SettingsError, match=f"KEPTN_RENEW_INTERVAL={renew} with KEPTN_POLL_INTERVAL={poll}"
        ):
            settings.check()
