"""The read API on the receiver's port: the run history, a task's log, a replay, and its OpenAPI
document. Behind the receiver's bearer token when one is set (RCV_AUTH_TOKEN).

A run's key is its (source, id) in URL-safe base64: opaque to clients, stable across restarts.
Logs come from the state (each task's bounded excerpt, kept with its outcome, so they outlive the
work dir), or while a task runs from `live` (the backend: the local output file, the Job's pod log).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from executor.history import RunHistory, RunRow, TaskRow
from executor.model.events import Event, EventError, Offer, event_from_mapping
from executor.sources.base import Intake
from executor.sources.openapi import CURSOR, DOCUMENT
from executor.state import StateStore

PREFIX = "/api/v1"
MAX_LIMIT = 500
FOLLOW_POLL_SECONDS = 0.5  # a local output file; a Kubernetes pod log is read every 2 s (two requests)
STATUSES = ("queued", "running", "succeeded", "failed", "errored")
FILTERS = ("type", "project", "stage", "service")

# job name -> the running task's output so far, or None (the backend's live_log)
LiveLogs = Callable[[str], Awaitable[str | None]]


def run_key(source: str, event_id: str) -> str:
    raw = json.dumps([source, event_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_key(key: str) -> tuple[str, str] | None:
    try:
        raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
        source, event_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        return None
    if not isinstance(source, str) or not isinstance(event_id, str):
        return None
    return source, event_id


def _time(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _summary(row: RunRow) -> dict[str, Any]:
    return {
        "key": run_key(row.source, row.id),
        "source": row.source,
        "id": row.id,
        "type": row.type,
        "project": row.project,
        "stage": row.stage,
        "service": row.service,
        "status": row.status,
        "received_at": _time(row.received_at),
        "finished_at": _time(row.finished_at) if row.state == "done" else None,
    }


class RunApi:
    def __init__(
        self,
        store: StateStore,
        intake: Intake,
        authorized: Callable[[web.Request], bool],
        live: LiveLogs | None = None,
        follow_seconds: float = FOLLOW_POLL_SECONDS,
    ) -> None:
        self.store = store
        self.history = RunHistory(store)
        self.intake = intake
        self.authorized = authorized
        self.live = live
        self.follow_seconds = follow_seconds

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(f"{PREFIX}/openapi.json", self.openapi)
        router.add_get(f"{PREFIX}/runs", self.list_runs)
        router.add_get(f"{PREFIX}/runs/{{key}}", self.show_run)
        router.add_get(f"{PREFIX}/runs/{{key}}/tasks/{{action}}/{{task}}/logs", self.logs)
        router.add_post(f"{PREFIX}/runs/{{key}}/replay", self.replay)

    def _check(self, request: web.Request) -> None:
        if not self.authorized(request):
            raise web.HTTPUnauthorized(
                text=json.dumps({"error": "missing or wrong bearer token (RCV_AUTH_TOKEN)"}),
                content_type="application/json",
                headers={"WWW-Authenticate": 'Bearer realm="job-executor"'},
            )

    def _run_of(self, request: web.Request) -> RunRow:
        found = parse_key(request.match_info["key"])
        row = None if found is None else self.history.run(*found)
        if row is None:
            raise _error(web.HTTPNotFound, "no run has this key; list them at /api/v1/runs")
        return row

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(DOCUMENT)

    async def list_runs(self, request: web.Request) -> web.Response:
        self._check(request)
        query = request.query
        status = query.get("status", "")
        if status and status not in STATUSES:
            raise _error(web.HTTPBadRequest, f"status must be one of {', '.join(STATUSES)}")
        try:
            limit = int(query.get("limit", "50"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise _error(web.HTTPBadRequest, f"limit must be a whole number from 1 to {MAX_LIMIT}")
        before = _cursor(query.get("before", ""))
        filters = {k: query[k] for k in FILTERS if query.get(k)}
        if status:
            filters["status"] = status
        rows = self.history.list_runs(filters, limit + 1, before)
        page = rows[:limit]
        more = len(rows) > limit
        cursor = f"{page[-1].received_at!r}_{page[-1].rowid}" if more and page else None
        return web.json_response({"runs": [_summary(r) for r in page], "next": cursor})

    async def show_run(self, request: web.Request) -> web.Response:
        self._check(request)
        row = self._run_of(request)
        stored = self.history.run_event(row.source, row.id)
        event = json.loads(stored[0]) if stored else None
        key = run_key(row.source, row.id)
        actions: dict[int, dict[str, Any]] = {}
        for task in self.history.run_tasks(row.source, row.id):
            action = actions.setdefault(
                task.action, {"name": task.action_name, "index": task.action, "status": "", "tasks": []}
            )
            action["tasks"].append(_task(key, task))
        for action in actions.values():
            states = [t["status"] for t in action["tasks"]]
            action["status"] = (
                "running"
                if "running" in states
                else "failed"
                if any(s != "succeeded" for s in states)
                else "succeeded"
            )
        body = {**_summary(row), "event": event, "config_digest": stored[1] if stored else None}
        body["actions"] = [actions[i] for i in sorted(actions)]
        return web.json_response(body)

    async def logs(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        row = self._run_of(request)
        task = self._task_of(row, request.match_info["action"], request.match_info["task"])
        if request.query.get("follow") not in ("1", "true"):
            return web.Response(text=await self._log_text(task), content_type="text/plain", charset="utf-8")
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        streamed = ""
        while True:
            task = self._task_of(row, task.action_name, task.task_name)
            text = await self._log_text(task)
            if text.startswith(streamed):
                new = text[len(streamed) :]
            else:
                # The kept excerpt is the end of the output, of which the live file gave us the
                # start: send only what lies beyond the last lines already streamed.
                tail = streamed[-200:]
                at = text.rfind(tail)
                new = text[at + len(tail) :] if at >= 0 else ""
            if new:
                await response.write(new.encode())
                streamed += new
            if task.outcome is not None:
                break
            await asyncio.sleep(self.follow_seconds)
        await response.write_eof()
        return response

    def _task_of(self, row: RunRow, action: str, task: str) -> TaskRow:
        for found in self.history.run_tasks(row.source, row.id):
            if found.action_name == action and found.task_name == task:
                return found
        raise _error(web.HTTPNotFound, f"run has no task {task!r} in action {action!r} (yet)")

    async def _log_text(self, task: TaskRow) -> str:
        if task.outcome is not None:
            return str(task.outcome.get("logs") or "")
        if self.live is not None and task.job:
            return await self.live(task.job) or ""
        return ""

    async def replay(self, request: web.Request) -> web.Response:
        self._check(request)
        row = self._run_of(request)
        which = request.query.get("config", "")
        if which not in ("", "pinned", "current"):
            raise _error(web.HTTPBadRequest, "config must be pinned (the default) or current")
        stored = self.history.run_event(row.source, row.id)
        if stored is None:
            raise _error(web.HTTPNotFound, "the run's event is no longer kept")
        text, digest = stored
        document = json.loads(text)
        document["id"] = f"{row.id}.replay-{uuid.uuid4().hex[:12]}"
        try:
            event: Event = event_from_mapping(document)
        except EventError as exc:
            raise _error(web.HTTPBadRequest, f"the stored event cannot be sent again: {exc}") from None
        answer = self.intake.offer(event)
        if answer is Offer.FULL:
            raise _error(web.HTTPTooManyRequests, "queue is full; retry later")
        if answer is not Offer.ACCEPTED:
            raise _error(web.HTTPServiceUnavailable, "not accepting events now; retry later")
        if which != "current" and digest:
            # Pinned before a worker can take it up (offer queued it; nothing awaited since):
            # the run goes ahead only under the config its original ran with.
            self.store.pin_config(event.source, event.id, digest)
        return web.json_response(
            {
                "key": run_key(event.source, event.id),
                "id": event.id,
                "replay_of": run_key(row.source, row.id),
            },
            status=202,
        )


def _task(key: str, task: TaskRow) -> dict[str, Any]:
    outcome = task.outcome or {}
    return {
        "name": task.task_name,
        "index": task.task,
        "status": outcome.get("status", "running") if task.outcome is not None else "running",
        "reason": outcome.get("reason", ""),
        "exit_code": outcome.get("exit_code"),
        "phases": task.phases,
        "result": outcome.get("result"),
        "job": task.job,
        "logs": f"{PREFIX}/runs/{key}/tasks/{_quote(task.action_name)}/{_quote(task.task_name)}/logs",
    }


def _quote(text: str) -> str:
    return quote(text, safe="")


def _cursor(text: str) -> tuple[float, int] | None:
    if not text:
        return None
    if not re.match(CURSOR, text):
        raise _error(web.HTTPBadRequest, "before must be the `next` of an earlier page")
    at, _, rowid = text.partition("_")
    return float(at), int(rowid)


def _error(kind: type[web.HTTPError], message: str) -> web.HTTPError:
    return kind(text=json.dumps({"error": message}), content_type="application/json")
