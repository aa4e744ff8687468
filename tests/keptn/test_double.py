"""The Keptn double itself, through real nginx with Keptn's gateway rules: the things that made
the old fake kinder than Keptn (issue 11) each have a test here."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp

from tests.keptn.conftest import PROJECT, SERVICE, STAGE
from tests.keptn.fake_keptn import FakeKeptn

TEST = "sh.keptn.event.test"


async def call(
    keptn: FakeKeptn,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    headers = {"x-token": keptn.token if token is None else token}
    async with aiohttp.ClientSession() as session:
        # yarl would re-encode the path: send it exactly as written
        from yarl import URL

        url = URL(keptn.url + path, encoded=True)
        data = raw if raw is not None else (None if body is None else __import__("json").dumps(body).encode())
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with session.request(method, url, data=data, headers=headers) as resp:
            text = await resp.text()
            try:
                return resp.status, __import__("json").loads(text)
            except ValueError:
                return resp.status, text


def answer(triggered: dict[str, Any], kind: str, **data: Any) -> dict[str, Any]:
    return {
        "type": f"{TEST}.{kind}",
        "source": "job-executor-service",
        "specversion": "1.0",
        "id": "client-chosen-id",
        "time": "2020-01-01T00:00:00Z",
        "shkeptncontext": triggered["shkeptncontext"],
        "triggeredid": triggered["id"],
        "data": {"project": PROJECT, "stage": STAGE, "service": SERVICE, **data},
    }


async def test_resource_uri_must_be_escaped_twice_through_the_gateway(keptn: FakeKeptn) -> None:
    keptn.put(PROJECT, "job/config.yaml", "x: 1\n", stage=STAGE, service=SERVICE)
    base = f"/resource-service/v1/project/{PROJECT}/stage/{STAGE}/service/{SERVICE}/resource"
    status, body = await call(keptn, "GET", f"{base}/job%252Fconfig.yaml")
    assert status == 200 and base64.b64decode(body["resourceContent"]) == b"x: 1\n"
    assert body["resourceURI"] == "job%2Fconfig.yaml"
    status, _ = await call(keptn, "GET", f"{base}/job%2Fconfig.yaml")
    assert status == 404  # nginx decoded it: two segments upstream
    status, _ = await call(keptn, "GET", base.replace("resource-service", "configuration-service") + "/x")
    assert status == 404  # no such route since Keptn 0.19
    status, _ = await call(keptn, "GET", f"/resource-service/v1/project/{PROJECT}/stage")
    assert status == 403  # the gateway's deny all
    assert keptn.requests[0].path == f"/api{base}/job%252Fconfig.yaml"


async def test_project_level_lives_on_its_own_branch(keptn: FakeKeptn) -> None:
    project_commit = keptn.put(PROJECT, "job/config.yaml", "project\n")
    stage_commit = keptn.put(PROJECT, "other.txt", "stage\n", stage=STAGE)
    base = f"/resource-service/v1/project/{PROJECT}/resource/job%252Fconfig.yaml"
    assert (await call(keptn, "GET", base))[0] == 200
    assert (await call(keptn, "GET", f"{base}?gitCommitID={project_commit}"))[0] == 200
    status, body = await call(keptn, "GET", f"{base}?gitCommitID={stage_commit}")
    assert status == 404 and set(body) == {"code", "message"}


async def test_a_bad_token_gets_the_gateway_json_then_429(keptn: FakeKeptn) -> None:
    path = f"/controlPlane/v1/event/triggered/{TEST}.triggered"
    answers = [await call(keptn, "GET", path, token="wrong") for _ in range(3)]
    assert answers[0] == (401, {"code": 401, "message": "unauthenticated or invalid credentials"})
    assert answers[1][0] == 401
    assert answers[2] == (429, {"code": 429, "message": "too many requests"})
    keptn.advance(1.0)  # the bucket refills at 1/s
    assert (await call(keptn, "GET", path, token="wrong"))[0] == 401
    assert (await call(keptn, "POST", "/v1/event", {"type": "x"}, token="wrong")) == (
        401,
        {"code": 401, "message": "incorrect api key auth"},
    )
    assert all(not r.authorised for r in keptn.requests)


async def test_event_validation_like_the_api_service(keptn: FakeKeptn) -> None:
    t = keptn.trigger(f"{TEST}.triggered", PROJECT, STAGE, SERVICE)
    bad: list[tuple[dict[str, Any], str]] = [
        ({**answer(t, "triggered")}, "unknown event type action: triggered"),
        ({**answer(t, "started"), "triggeredid": ""}, "mandatory field 'triggeredid' missing"),
        (answer(t, "started", stage=""), "mandatory field(s) 'project', 'stage' or 'service' missing"),
        (answer(t, "finished", status="succeeded"), "result field is not set"),
        (answer(t, "finished", result="pass"), "status field is not set"),
        (
            answer(t, "finished", result="pass", status="succeeded", labels={"n": 1}),
            "could not parse common event data",
        ),
        (
            {**answer(t, "started"), "type": "sh.keptn.event.service.create"},
            "unknown event type action: create",
        ),
        ({**answer(t, "started"), "type": "sh.keptn.event.test"}, "unknown event type"),
        ({**answer(t, "started"), "type": "my.own.type"}, "unknown event type"),
        (
            {**answer(t, "started"), "type": "sh.keptn.event.dev.delivery.finished"},
            "unknown event type action: finished",
        ),
    ]
    for event, message in bad:
        assert await call(keptn, "POST", "/v1/event", event) == (400, {"code": 400, "message": message}), (
            message
        )
    status, _ = await call(keptn, "POST", "/v1/event", {**answer(t, "started"), "padding": "x" * 70_000})
    assert status == 400 and "too large" in keptn.refused[-1][1]
    assert keptn.received == [] and len(keptn.refused) == len(bad) + 1


async def test_accepted_events_are_rewritten(keptn: FakeKeptn) -> None:
    t = keptn.trigger(f"{TEST}.triggered", PROJECT, STAGE, SERVICE)
    status, body = await call(keptn, "POST", "/v1/event", {**answer(t, "started"), "datacontenttype": "x"})
    assert status == 200 and body == {"keptnContext": t["shkeptncontext"]}
    (event,) = keptn.received
    assert event["id"] != "client-chosen-id" and event["time"] != "2020-01-01T00:00:00Z"
    assert event["contenttype"] == "application/json" and "datacontenttype" not in event
    status, body = await call(
        keptn, "POST", "/v1/event", {**answer(t, "started"), "shkeptncontext": "not-a-uuid"}
    )
    again = await call(keptn, "POST", "/v1/event", {**answer(t, "started"), "shkeptncontext": "not-a-uuid"})
    assert body == again[1] and body["keptnContext"] != "not-a-uuid"  # derived, deterministically


async def test_a_task_closes_when_finished_equals_started(keptn: FakeKeptn) -> None:
    t = keptn.trigger(f"{TEST}.triggered", PROJECT, STAGE, SERVICE)
    for kind, data in [("started", {}), ("finished", {"result": "pass", "status": "succeeded"})]:
        assert (await call(keptn, "POST", "/v1/event", answer(t, kind, **data)))[0] == 200
    task = keptn.tasks[t["id"]]
    assert task.closed and keptn.open_triggered == []
    # a second action's pair arrives after the close: Keptn drops it
    await call(keptn, "POST", "/v1/event", answer(t, "started"))
    await call(keptn, "POST", "/v1/event", answer(t, "finished", result="fail", status="succeeded"))
    assert len(task.finished) == 1 and len(task.late) == 2 and not task.failed


async def test_both_started_first_closes_once_with_both_results(keptn: FakeKeptn) -> None:
    t = keptn.trigger(f"{TEST}.triggered", PROJECT, STAGE, SERVICE)
    for kind, data in [
        ("started", {}),
        ("started", {}),
        ("finished", {"result": "pass", "status": "succeeded"}),
        ("finished", {"result": "fail", "status": "succeeded"}),
    ]:
        await call(keptn, "POST", "/v1/event", answer(t, kind, **data))
    task = keptn.tasks[t["id"]]
    assert task.closed and len(task.finished) == 2 and task.late == [] and task.failed


async def test_registration_by_name_and_namespace_expires_after_60s(keptn: FakeKeptn) -> None:
    def integration(host: str) -> dict[str, Any]:
        return {
            "name": "job-executor",
            "metadata": {"hostname": host, "kubernetesmetadata": {"namespace": "keptn-exec"}},
            "subscriptions": [{"event": f"{TEST}.triggered", "filter": {}}],
        }

    status, first = await call(keptn, "POST", "/controlPlane/v1/uniform/registration", integration("node-1"))
    assert status == 201
    status, again = await call(keptn, "POST", "/controlPlane/v1/uniform/registration", integration("node-2"))
    assert status == 200 and again == first  # another node, same name + namespace
    keptn.advance(59)
    assert (await call(keptn, "PUT", f"/controlPlane/v1/uniform/registration/{first['id']}/ping"))[0] == 200
    keptn.advance(59)
    assert first["id"] in keptn.registrations
    keptn.advance(2)
    assert keptn.registrations == {}
    status, body = await call(keptn, "PUT", f"/controlPlane/v1/uniform/registration/{first['id']}/ping")
    assert status == 404 and body["code"] == 404


async def test_the_datastore_answers_whether_keptn_has_an_event(keptn: FakeKeptn) -> None:
    t = keptn.trigger(f"{TEST}.triggered", PROJECT, STAGE, SERVICE)
    await call(keptn, "POST", "/v1/event", answer(t, "started"))
    flt = f"data.project:{PROJECT} AND triggeredid:{t['id']} AND source:job-executor-service"
    from urllib.parse import quote

    path = f"/mongodb-datastore/event/type/{TEST}.started?filter={quote(flt)}"
    status, body = await call(keptn, "GET", path)
    assert status == 200 and [e["triggeredid"] for e in body["events"]] == [t["id"]]
    status, body = await call(keptn, "GET", path.replace(".started?", ".finished?"))
    assert status == 200 and body == {"events": None}
    status, body = await call(keptn, "GET", f"/mongodb-datastore/event/type/{TEST}.started?filter=source:x")
    assert status == 500 and set(body) == {"code", "message"}
    query = f"keptnContext={t['shkeptncontext']}&type={TEST}.started&source=job-executor-service"
    status, body = await call(keptn, "GET", f"/mongodb-datastore/event?{query}")
    assert status == 200 and body["totalCount"] == 1 and "nextPageKey" not in body
    assert (await call(keptn, "GET", "/mongodb-datastore/event?pageSize=101"))[0] == 422
    assert (await call(keptn, "POST", "/mongodb-datastore/event", {}))[0] == 403  # writes denied
    assert (await call(keptn, "GET", "/mongodb-datastore/event", token="wrong"))[0] == 401
