"""Kubernetes API access for the Kubernetes backend: client configuration and retried calls.

Calls go through kubernetes_asyncio's generated API classes (so URLs, query parameters and auth
are the real client's) with `_preload_content=False`: answers are plain JSON dicts, never the
generated models, and every non-2xx answer becomes an `ApiError` carrying the server's Status.
Transient failures (HTTP 429 and 5xx, connection errors, timeouts) are retried with capped,
jittered exponential backoff; what still fails after that is an `ApiError` too, a RuntimeError
with a message fit for a finished event. Messages quote the server's Status message only,
never request bodies or headers, so nothing secret reaches a log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config

from executor.backends.base import BackendError
from executor.backends.kubernetes.admission import TokenBucket, is_write
from executor.model.errors import Permanent, Temporary
from executor.support import fastjson
from executor.support.backoff import KUBE_REQUEST, Backoff

log = logging.getLogger(__name__)

ApiCall = Callable[..., Awaitable[Any]]
Obj = dict[str, Any]


class ApiError(BackendError):
    """A Kubernetes API call that did not succeed: the server's answer, or why there was none."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status  # HTTP status; 0 when the server could not be reached
        self.reason = reason  # the Status reason: NotFound, AlreadyExists, Expired, ...


class ApiUnavailable(ApiError, Temporary):
    """No answer, 429 or 5xx: the API server was unreachable or overloaded, not the request wrong."""


class ApiUnreachable(ApiUnavailable):
    """The connection itself failed (refused, no route, DNS): the request never left, so nothing
    can have been created. Only this, not a timeout, lets a create move to another cluster
    without the risk of running the task twice."""


class ApiOverQuota(ApiError, Temporary):
    """A 403 from a ResourceQuota ("exceeded quota"): the namespace is full for now, not forbidden.
    Tried again later, or at once in another cluster of CLUSTERS_FILE."""


class ApiRefused(ApiError, Permanent):
    """The API server refused the request itself and will again: a namespace the service's RBAC
    does not cover (403) or that does not exist (404 on a create). Never retried."""


# etcd refuses an object over its --max-request-bytes; the API server passes that on as a 500
# (responsewriters/status.go ErrorToAPIStatus), yet the same request fails again every time.
TOO_LARGE = "etcdserver: request is too large"


def api_error(message: str, status: int = 0, reason: str = "") -> ApiError:
    transient = (status == 0 or status == 429 or status >= 500) and TOO_LARGE not in message
    return (ApiUnavailable if transient else ApiError)(message, status, reason)


def over_quota(exc: ApiError) -> bool:
    """A 403 from a ResourceQuota ("exceeded quota: ..."), not from RBAC: the cluster is full."""
    return exc.status == 403 and "exceeded quota" in str(exc)


async def load_api_client(kubeconfig: str = "", context: str = "") -> client.ApiClient:
    """In the cluster: the pod's service account; elsewhere: the kubeconfig (KUBECONFIG honoured).
    A `kubeconfig` path (a cluster of CLUSTERS_FILE) is always read, with its `context` if given."""
    configuration = client.Configuration()
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not kubeconfig
    # Read KUBECONFIG now: kubernetes_asyncio's default was fixed when it was imported.
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    where = "the in-cluster service account" if in_cluster else f"kubeconfig {path or '~/.kube/config'}"
    try:
        if in_cluster:
            load_incluster: Callable[..., None] = config.load_incluster_config
            load_incluster(client_configuration=configuration)
        else:
            await config.load_kube_config(
                config_file=path,
                context=context or None,
                client_configuration=configuration,
                persist_config=False,
            )
    except Exception as exc:  # the loaders raise ConfigException, OSError, YAML errors...
        raise ApiError(f"cannot configure the Kubernetes client from {where}: {exc}") from None
    return FastApiClient(configuration=configuration)


class JSONBody(dict[str, Any]):
    """A request body that is plain JSON already: dicts, lists, strings, numbers, booleans and
    None only, as the manifests of executor/backends/kubernetes/render.py are."""


class FastApiClient(client.ApiClient):
    """kubernetes_asyncio's client, except that it does not walk a JSONBody before encoding it.

    The generated client rebuilds every request body recursively, turning models into dicts;
    for a Job manifest that is plain JSON already it only copies it (about 6% of the service's
    CPU per event, in a profile at 1,000 events/s). With any other client a JSONBody is just a
    dict: the same request.
    """

    def sanitize_for_serialization(self, obj: Any) -> Any:
        if isinstance(obj, JSONBody):
            return obj
        return super().sanitize_for_serialization(obj)

    def request(
        self,
        method: str,
        url: str,
        query_params: Any = None,
        headers: Any = None,
        post_params: Any = None,
        body: Any = None,
        _preload_content: bool = True,
        _request_timeout: Any = None,
    ) -> Awaitable[Any]:
        # The generated REST client encodes every JSON body with the standard library's json
        # (about 2% of the service's CPU per event: the Job manifest); a JSONBody is sent as
        # fastjson wrote it, the rest of the request made as that client makes it.
        # Only with a ClientTimeout (KubeAPI's): other timeout forms stay the generated client's.
        if (
            isinstance(body, JSONBody)
            and isinstance(_request_timeout, aiohttp.ClientTimeout)
            and not _preload_content
            and not post_params
        ):
            return self._send_json(method, url, query_params, dict(headers or {}), body, _request_timeout)
        return super().request(  # type: ignore[no-any-return]
            method, url, query_params, headers, post_params, body, _preload_content, _request_timeout
        )

    async def _send_json(
        self,
        method: str,
        url: str,
        query: Any,
        headers: dict[str, str],
        body: JSONBody,
        limits: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        rest = self.rest_client
        headers.setdefault("Content-Type", "application/json")
        args: dict[str, Any] = {
            "method": method.upper(),
            "url": url + ("?" + urllib.parse.urlencode(query) if query else ""),
            "headers": headers,
            "data": fastjson.dumps(body),
            "timeout": limits,
        }
        if rest.proxy:
            args["proxy"] = rest.proxy
        if rest.proxy_headers:
            args["proxy_headers"] = rest.proxy_headers
        if rest.server_hostname:
            args["server_hostname"] = rest.server_hostname
        return await rest.pool_manager.request(**args)


class KubeAPI:
    """The few calls the backend makes, each returning parsed JSON (or text for logs)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        backoff: Backoff | None = None,
        request_timeout: float = 30.0,
        writes: TokenBucket | None = None,
    ) -> None:
        self.api_client = api_client
        # KUBE_WRITE_QPS: each create/patch/replace/delete request (a retry too) takes a token.
        self.writes = writes
        skip_environment_lookups(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.backoff = backoff or KUBE_REQUEST
        self.timeout = aiohttp.ClientTimeout(total=request_timeout)

    async def call(self, what: str, fn: ApiCall, *args: Any, **kwargs: Any) -> Any:
        """The JSON answer of `fn(*args, **kwargs)`, retrying transient failures."""
        body = await self._retried(what, fn, *args, **kwargs)
        return fastjson.loads(body) if body else {}

    async def job_pages(self, namespace: str, selector: str, limit: int = 500) -> AsyncIterator[Obj]:
        """Each page of a (paged) Job list: its `items`, and its `metadata` (the last page's
        resourceVersion is the list's, where a watch can start)."""
        token = ""
        while True:
            page: Obj = await self.call(
                f"listing Jobs in {namespace}",
                self.batch.list_namespaced_job,
                namespace,
                label_selector=selector,
                limit=limit,
                **({"_continue": token} if token else {}),
            )
            yield page
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    async def text(self, what: str, fn: ApiCall, *args: Any, **kwargs: Any) -> str:
        body = await self._retried(what, fn, *args, **kwargs)
        return body.decode("utf-8", "replace")

    async def _retried(self, what: str, fn: ApiCall, *args: Any, **kwargs: Any) -> bytes:
        attempt = 0
        limited = self.writes is not None and is_write(fn)
        while True:
            try:
                if limited:
                    assert self.writes is not None
                    await self.writes.take()
                return await self._once(fn, *args, **kwargs)
            except ApiError as exc:
                if not isinstance(exc, Temporary):
                    raise ApiError(f"{what}: {exc}", exc.status, exc.reason) from None
                error = exc
            attempt += 1
            if attempt >= self.backoff.attempts:
                kind = ApiUnreachable if isinstance(error, ApiUnreachable) else ApiUnavailable
                raise kind(
                    f"{what}: {error} (gave up after {attempt} attempts)", error.status, error.reason
                ) from None
            delay = self.backoff.delay(attempt - 1)
            log.info("%s: %s; retrying in %.1f s", what, error, delay)
            await asyncio.sleep(delay)

    async def _once(self, fn: ApiCall, *args: Any, **kwargs: Any) -> bytes:
        try:
            response = await fn(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
            try:
                body: bytes = await response.read()
            finally:
                response.release()
        except aiohttp.ClientConnectorError as exc:
            raise ApiUnreachable(
                f"cannot connect to the Kubernetes API ({_describe_connection(exc)})"
            ) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ApiUnavailable(f"cannot reach the Kubernetes API ({_describe_connection(exc)})") from None
        status = int(response.status)
        if 200 <= status < 300:
            return body
        raise status_error(status, body, str(response.reason or ""))


# kubernetes_asyncio's read buffer (a watch event can be as large as an object, up to 1.5 MiB).
READ_BUFSIZE = 2**21


def skip_environment_lookups(api_client: client.ApiClient) -> bool:
    """Stop the client from consulting the environment on every request, when it would find nothing.

    kubernetes_asyncio's HTTP session trusts the environment: before each request aiohttp looks
    for a proxy (HTTP(S)_PROXY, NO_PROXY) and for ~/.netrc credentials, twice hopping to a worker
    thread to do so. Under load that was the largest single cost of a request. When no proxy
    applies to the API server and there is no netrc file, those lookups can only come back
    empty, so the session is replaced by one that skips them (same connection pool, same
    settings otherwise). Otherwise the client is left as it is. True when it was changed.
    """
    rest: Any = getattr(api_client, "rest_client", None)
    session = getattr(rest, "pool_manager", None)
    if not isinstance(session, aiohttp.ClientSession) or not session.trust_env or session.closed:
        return False
    if _environment_may_apply(str(api_client.configuration.host)):
        return False
    connector = session.connector
    session.detach()  # the new session takes over the connector; the old one is now closed
    rest.pool_manager = aiohttp.ClientSession(connector=connector, trust_env=False, read_bufsize=READ_BUFSIZE)
    return True


def _environment_may_apply(url: str) -> bool:
    """Whether aiohttp's trust_env could find a proxy or netrc credentials for `url`."""
    if os.environ.get("NETRC"):
        return True
    try:
        if (Path.home() / ".netrc").exists():
            return True
    except (RuntimeError, OSError):  # no home directory: aiohttp finds no netrc either
        pass
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    wanted = {"https": ("https", "wss"), "http": ("http", "ws")}.get(parts.scheme, (parts.scheme,))
    return any(proxies.get(scheme) for scheme in wanted) and not urllib.request.proxy_bypass(
        parts.hostname or ""
    )


def status_error(status: int, body: bytes | str | None, fallback: str = "") -> ApiError:
    """An ApiError from an HTTP status and a Status body (only its reason and message are kept)."""
    reason, message = fallback, ""
    try:
        data = json.loads(body or b"")
    except ValueError:
        data = None
    if isinstance(data, dict):
        reason = str(data.get("reason") or reason)
        message = str(data.get("message") or "")
    text = f"HTTP {status} {reason}".rstrip()
    return api_error(f"{text}: {message}" if message else text, status, reason)


def _describe_connection(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
