"""One async client for the Keptn API (the gateway at KEPTN_API_ENDPOINT, token in ``x-token``):
resources, uniform registration, triggered events, events and logs. Which endpoints it relies on,
and where in Keptn's sources each was read, is in docs/keptn-api.md.

Errors: 401/403 raise KeptnAuthError, 404 is a "not found" result (None or an empty list), 5xx,
429 and connection failures are retried with backoff and then raise KeptnUnavailable; other 4xx
raise KeptnRequestError. The token is sent only in the header and never appears in a message or
a log line.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import yarl

from executor.keptn.models import IntegrationMetadata, Resource, Subscription
from executor.model.errors import Permanent, Temporary
from executor.support.backoff import KEPTN_REQUEST, Backoff
from executor.support.urls import without_userinfo

log = logging.getLogger(__name__)

TOKEN_HEADER = "x-token"
# Keptn 0.19 removed the configuration-service route from the gateway (keptn/keptn #8530); go-utils
# reads resources from the resource-service since v0.18.0 (pkg/api/utils/v2/resourceUtils.go).
RESOURCE_SERVICE = "resource-service"
CONTROL_PLANE = "controlPlane"
_MAX_PAGES = 1000


class KeptnError(RuntimeError):
    """A Keptn API call failed; the message says which endpoint and why (never the token)."""


class KeptnAuthError(KeptnError, Temporary):
    """The token was refused (401/403). A quick retry cannot help, but the operator can fix the
    token: events wait for that (Temporary) rather than fail, and the poller backs off long."""


class KeptnUnavailable(KeptnError, Temporary):
    """The control plane did not answer, or answered 5xx, after a few retries: try again later."""


class KeptnRequestError(KeptnError, Permanent):
    """The control plane refused the request itself (4xx other than 401/403/404)."""


@dataclass
class _Reply:
    status: int
    body: Any = field(default=None)


class KeptnAPI:
    """Async client for the Keptn API gateway (one aiohttp session, opened on first use)."""

    def __init__(
        self,
        endpoint: str,
        token: str = "",
        *,
        timeout: float = 10.0,
        retries: int = KEPTN_REQUEST.attempts - 1,
        backoff: float = KEPTN_REQUEST.base,
        max_backoff: float = KEPTN_REQUEST.cap,
        resource_service: str = RESOURCE_SERVICE,
    ) -> None:
        endpoint = endpoint.strip().rstrip("/")
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"Keptn API endpoint {without_userinfo(endpoint)!r} is not an http(s) URL; "
                "write it like http://keptn.example.com/api"
            )
        self._endpoint = endpoint
        self.endpoint = without_userinfo(endpoint)  # safe to print
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.retries = max(0, retries)
        self.backoff = Backoff(base=backoff, cap=max_backoff)
        self.resource_service = resource_service.strip("/")
        self._session: aiohttp.ClientSession | None = None
        self._refused = False  # the last answer was a refused token (until one is accepted)

    def __repr__(self) -> str:
        return f"KeptnAPI({self.endpoint!r})"

    async def __aenter__(self) -> KeptnAPI:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- resource service ----

    def resource_path(self, project: str, stage: str = "", service: str = "", uri: str = "") -> str:
        if service and not stage:
            raise ValueError("a service-level resource needs a stage")
        path = f"/{self.resource_service}/v1/project/{_segment(project)}"
        if stage:
            path += f"/stage/{_segment(stage)}"
        if service:
            path += f"/service/{_segment(service)}"
        path += "/resource"
        if uri:
            # Escaped twice: the gateway's nginx decodes the path once before proxying, and the
            # resource service takes the URI as one segment that it unescapes itself
            # (keptn/keptn resource-service/handler/resource_manager.go; JES
            # pkg/keptn/resource_service.go escapes before go-utils escapes again).
            path += "/" + _segment(_segment(uri.lstrip("/")))
        return path

    async def get_resource(
        self, uri: str, *, project: str, stage: str = "", service: str = "", commit: str = ""
    ) -> Resource | None:
        """A file at the project, stage or service level; None when Keptn answers 404."""
        query = {"gitCommitID": commit} if commit else {}
        reply = await self._request("GET", self.resource_path(project, stage, service, uri), query)
        if reply.status == 404:
            return None
        body = _object(reply.body, "resource")
        raw = body.get("resourceContent") or ""
        if not isinstance(raw, str):
            raise KeptnError(f"{self.endpoint} sent a resource whose content is not a string")
        try:
            content = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise KeptnError(f"{self.endpoint} sent resource {uri!r} with invalid base64 content") from None
        metadata = body.get("metadata")
        if not isinstance(metadata, dict):
            metadata = {}
        return Resource(
            # The service echoes the URI still escaped once; the one we asked for is the name.
            uri=uri.lstrip("/"),
            content=content,
            version=str(metadata.get("version") or ""),
        )

    async def list_resources(
        self,
        *,
        project: str,
        stage: str = "",
        service: str = "",
        commit: str = "",
        page_size: int = 50,
    ) -> list[str] | None:
        """Every resource URI at a level (paging followed); None when the level does not exist."""
        query = {"pageSize": str(page_size)}
        if commit:
            query["gitCommitID"] = commit
        items = await self._paged(self.resource_path(project, stage, service), query, "resources")
        if items is None:
            return None
        return [i["resourceURI"].lstrip("/") for i in items if isinstance(i.get("resourceURI"), str)]

    # ---- uniform registration ----

    async def register(
        self,
        name: str,
        version: str,
        subscriptions: Sequence[Subscription],
        metadata: IntegrationMetadata,
    ) -> str:
        """Register (or re-register) the integration; returns its id."""
        body = {
            "name": name,
            "metadata": metadata.to_json(version),
            "subscriptions": [s.to_json() for s in subscriptions],
        }
        reply = await self._request("POST", f"/{CONTROL_PLANE}/v1/uniform/registration", body=body)
        if reply.status == 404:
            raise KeptnRequestError(f"{self.endpoint} has no uniform registration endpoint (404)")
        integration_id = _object(reply.body, "registration").get("id")
        if not isinstance(integration_id, str) or not integration_id:
            raise KeptnError(f"{self.endpoint} answered the registration without an id")
        return integration_id

    async def ping(self, integration_id: str) -> dict[str, Any] | None:
        """Renew a registration; the current Integration, or None when Keptn no longer knows it."""
        path = f"/{CONTROL_PLANE}/v1/uniform/registration/{_segment(integration_id)}/ping"
        reply = await self._request("PUT", path)
        if reply.status == 404:
            return None
        return _object(reply.body, "ping answer")

    async def get_registrations(self, name: str = "") -> list[dict[str, Any]]:
        query = {"name": name} if name else {}
        reply = await self._request("GET", f"/{CONTROL_PLANE}/v1/uniform/registration", query)
        if reply.status == 404 or not isinstance(reply.body, list):
            return []
        return [r for r in reply.body if isinstance(r, dict)]

    # ---- events ----

    async def triggered_events(
        self,
        event_type: str,
        *,
        project: str = "",
        stage: str = "",
        service: str = "",
        page_size: int = 50,
    ) -> list[dict[str, Any]]:
        """Open .triggered events of one type (paging followed); [] when the project is unknown."""
        path = f"/{CONTROL_PLANE}/v1/event/triggered/{_segment(event_type)}"
        query = {"pageSize": str(page_size)}
        for key, value in (("project", project), ("stage", stage), ("service", service)):
            if value:
                query[key] = value
        return await self._paged(path, query, "events") or []

    async def _paged(self, path: str, query: dict[str, str], key: str) -> list[dict[str, Any]] | None:
        """The `key` lists of every page (Keptn's nextPageKey paging; "0" or "" ends it).
        None when the first page is a 404; a 404 later ends the listing with what was read."""
        items: list[dict[str, Any]] = []
        page_key = ""
        for page in range(_MAX_PAGES):
            reply = await self._request(
                "GET", path, {**query, **({"nextPageKey": page_key} if page_key else {})}
            )
            if reply.status == 404:
                return None if page == 0 else items
            body = _object(reply.body, f"{key} list")
            items.extend(i for i in body.get(key) or [] if isinstance(i, dict))
            next_key = str(body.get("nextPageKey") or "")
            if next_key in ("", "0") or next_key == page_key:
                return items
            page_key = next_key
        raise KeptnError(f"{self.endpoint}: the {key} listing of {path} did not end after {_MAX_PAGES} pages")

    async def send_event(self, event: Mapping[str, Any]) -> str:
        """POST a CloudEvent to the api-service; returns the keptnContext it answers with."""
        reply = await self._request("POST", "/v1/event", body=dict(event))
        if reply.status == 404:
            raise KeptnRequestError(f"{self.endpoint} has no event endpoint (404 on /v1/event)")
        if isinstance(reply.body, dict):
            return str(reply.body.get("keptnContext") or "")
        return ""

    async def find_events(
        self, event_type: str, match: Mapping[str, str], limit: int = 1
    ) -> list[dict[str, Any]]:
        """Events Keptn stored of one type whose fields equal `match` (dotted paths; one of them
        must be `data.project` or `shkeptncontext`): mongodb-datastore's
        ``GET /event/type/{eventType}?filter=k:v AND k:v`` (keptn/keptn
        mongodb-datastore/db/mongodb_event_repo.go GetEventsByType). [] when none."""
        for key, value in match.items():
            if not value or ":" in value or "," in value or " AND " in value:
                raise KeptnRequestError(f"cannot ask Keptn's event store for {key}={value!r}")
        query = {"filter": " AND ".join(f"{k}:{v}" for k, v in match.items()), "limit": str(limit)}
        reply = await self._request("GET", f"/mongodb-datastore/event/type/{_segment(event_type)}", query)
        if reply.status == 404:
            raise KeptnRequestError(f"{self.endpoint} has no event store route (404 on /mongodb-datastore)")
        events = _object(reply.body, "event list").get("events")
        return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []

    async def send_logs(self, entries: Sequence[Mapping[str, Any]]) -> None:
        if not entries:
            return
        reply = await self._request(
            "POST", f"/{CONTROL_PLANE}/v1/log", body={"logs": [dict(e) for e in entries]}
        )
        if reply.status == 404:
            raise KeptnRequestError(f"{self.endpoint} has no log endpoint (404 on /{CONTROL_PLANE}/v1/log)")

    # ---- transport ----

    async def _request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        *,
        body: Any = None,
    ) -> _Reply:
        url = self._endpoint + path
        if query:
            url += "?" + urlencode(query, quote_via=quote)
        headers = {"Accept": "application/json"}
        if self._token:
            headers[TOKEN_HEADER] = self._token
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, separators=(",", ":")).encode()
        where = f"{method} {self.endpoint}{path}"
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff.delay(attempt - 1))
            try:
                session = self._open()
                # Never follow a redirect: it would carry the token to wherever it points.
                async with session.request(
                    method,
                    yarl.URL(url, encoded=True),
                    data=data,
                    headers=headers,
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    location = response.headers.get("Location", "")
                    text = await response.text(errors="replace")
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
                log.debug("%s failed (attempt %d): %s", where, attempt + 1, problem)
                continue
            if 300 <= status < 400:
                raise KeptnRequestError(
                    f"{where} answered {status} redirecting to {_where_to(url, location)}; the request "
                    "(and its token) was not sent there: set KEPTN_API_ENDPOINT to the address that "
                    "answers without a redirect"
                )
            if status in (401, 403):
                self._refused = True
                raise KeptnAuthError(
                    f"KEPTN_API_TOKEN was refused by {self.endpoint}: check the token "
                    f"({method} {path} answered {status})"
                )
            if status == 429 and self._refused:
                # Keptn's gateway rate-limits only the auth checks of refused tokens
                # (keptn/keptn api/middleware/ratelimiter.go): after a 401, a 429 is the same refusal.
                raise KeptnAuthError(
                    f"KEPTN_API_TOKEN was refused by {self.endpoint}: check the token "
                    f"({method} {path} answered 429, the gateway's limit on refused tokens)"
                )
            if status >= 500 or status == 429:
                problem = f"HTTP {status}{_message_suffix(text)}"
                log.debug("%s answered %s (attempt %d)", where, status, attempt + 1)
                continue
            parsed = _json_or_none(text)
            if status == 404:
                self._refused = False
                return _Reply(404, parsed)
            self._refused = False
            if status >= 400:
                raise KeptnRequestError(f"{where} answered {status}{_message_suffix(text)}")
            return _Reply(status, parsed)
        raise KeptnUnavailable(
            f"Keptn API at {self.endpoint} is unavailable: {method} {path} failed "
            f"{self.retries + 1} time(s), last: {problem}"
        )

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def _where_to(url: str, location: str) -> str:
    """The redirect target for a message (credentials removed), and whether it leaves our origin."""
    if not location:
        return "nowhere (no Location header)"
    target = yarl.URL(url, encoded=True).join(yarl.URL(location))
    here = yarl.URL(url, encoded=True)
    shown = without_userinfo(str(target.with_query(None)))
    if (target.scheme, target.host, target.port) != (here.scheme, here.host, here.port):
        return f"{shown} (another origin)"
    return shown


def _segment(value: str) -> str:
    """One URL path segment: every reserved character escaped, `/` included."""
    return quote(value, safe="")


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise KeptnError(f"the Keptn API answered with something that is not a JSON object ({what})")
    return body


def _json_or_none(text: str) -> Any:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _message_suffix(text: str) -> str:
    parsed = _json_or_none(text)
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return f": {parsed['message'][:200]}"
    return ""
