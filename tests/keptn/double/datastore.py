"""mongodb-datastore's read API, through the gateway at ``/api/mongodb-datastore``.

This is the endpoint a remote execution plane can use to ask whether Keptn already has an event
(the api-service publishes every accepted event on NATS and the datastore stores all of them):
- ``GET /event`` (keptn/keptn ``mongodb-datastore/swagger.yaml`` ``getEvents``,
  ``restapi/operations/event/get_events_parameters.go``, ``db/mongodb_event_repo.go``
  ``getSearchOptions``/``findInDB``; client: go-utils ``pkg/api/utils/v2/eventUtils.go``
  ``GetEvents``): exact matches on ``keptnContext``, ``type``, ``source``, ``project``,
  ``stage``, ``service``, ``eventID``; ``fromTime``/``beforeTime`` on ``time``; ``root``;
  ``pageSize`` 1..100 (default 20) and ``nextPageKey`` (an offset). Newest first. 200
  ``{"events", "nextPageKey", "pageSize", "totalCount"}`` (omitempty: no ``nextPageKey`` on the
  last page; ``events`` is null when nothing matched). There is no ``triggeredid`` parameter.
- ``GET /event/type/{eventType}?filter=k:v AND k:v`` (``getEventsByType``,
  ``mongodb_event_repo.go`` ``GetEventsByType``/``parseFilter``/``validateFilter``): any field
  path, ``a,b`` means one of; the filter must name ``data.project`` or ``shkeptncontext``, else
  the handler fails (``configure_mongodb_datastore.go`` answers every handler error with 500);
  ``limit``, ``fromTime``, ``excludeInvalidated``. 200 ``{"events"}``. So
  ``filter=data.project:P AND triggeredid:T AND source:S`` answers "does Keptn have it".
"""

from __future__ import annotations

from typing import Any


class QueryError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _field(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _page_size(raw: str | None, default: int = 20) -> int:
    if raw in (None, ""):
        return default
    try:
        size = int(raw)
    except ValueError:
        raise QueryError(422, f'pageSize in query must be of type int64: "{raw}"') from None
    if size < 1:
        raise QueryError(422, "pageSize in query should be greater than or equal to 1")
    if size > 100:
        raise QueryError(422, "pageSize in query should be less than or equal to 100")
    return size


def _newest_first(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    indexed = list(enumerate(events))
    indexed.sort(key=lambda pair: (str(pair[1].get("time", "")), pair[0]), reverse=True)
    return [event for _, event in indexed]


def get_events(events: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    size = _page_size(query.get("pageSize"))
    exact = {
        "keptnContext": "shkeptncontext",
        "type": "type",
        "source": "source",
        "project": "data.project",
        "stage": "data.stage",
        "service": "data.service",
        "eventID": "id",
    }
    wanted = {path: query[name] for name, path in exact.items() if query.get(name)}
    found = [e for e in events if all(_field(e, p) == v for p, v in wanted.items())]
    if query.get("fromTime"):
        found = [e for e in found if str(e.get("time", "")) > query["fromTime"]]
    if query.get("beforeTime"):
        found = [e for e in found if str(e.get("time", "")) < query["beforeTime"]]
    if query.get("root"):
        first: dict[str, dict[str, Any]] = {}
        for e in sorted(found, key=lambda e: str(e.get("time", ""))):
            first.setdefault(str(e.get("shkeptncontext")), e)
        found = list(first.values())
    found = _newest_first(found)
    start = int(query.get("nextPageKey") or 0)
    page = found[start : start + size]
    body: dict[str, Any] = {"events": page or None, "pageSize": size}
    if found:
        body["totalCount"] = len(found)
    if start + size < len(found):
        body["nextPageKey"] = str(start + size)
    return body


def get_events_by_type(
    events: list[dict[str, Any]], event_type: str, query: dict[str, str]
) -> dict[str, Any]:
    raw = query.get("filter")
    if not raw:
        raise QueryError(422, "filter in query is required")
    match: dict[str, list[str]] = {}
    for pair in raw.split(" AND "):
        key, sep, value = pair.partition(":")
        if sep and ":" not in value:
            match[key] = value.split(",")
    if not match.get("data.project") and not match.get("shkeptncontext"):
        raise QueryError(500, "invalid event filter: either 'shkeptncontext' or 'data.project' must be set")
    found = [
        e
        for e in events
        if e.get("type") == event_type and all(_field(e, k) in values for k, values in match.items())
    ]
    if query.get("fromTime"):
        found = [e for e in found if str(e.get("time", "")) > query["fromTime"]]
    if query.get("excludeInvalidated") == "true":
        invalidated = {
            e.get("triggeredid") for e in events if str(e.get("type", "")).endswith(".invalidated")
        }
        found = [e for e in found if e.get("triggeredid") not in invalidated]
    found = _newest_first(found)
    limit = int(query.get("limit") or 0)
    return {"events": (found[:limit] if limit > 0 else found) or None}
