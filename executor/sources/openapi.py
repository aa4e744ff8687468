"""The read API's OpenAPI 3.0 document, served at /api/v1/openapi.json and checked against the
running service (tests/observe/test_api_schema.py)."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "description": "what is wrong, in words",
    "content": {
        "application/json": {
            "schema": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
        }
    },
}
_TIME = {"type": "string", "nullable": True, "description": "RFC 3339, UTC"}
CURSOR = r"^[0-9]{1,12}(\.[0-9]{1,9})?_[0-9]{1,18}$"  # the `next` of a page: received_at_rowid
_TEXT = {"type": "string"}
_KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
_STATUS = {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "errored"]}
_SUMMARY_PROPS: dict[str, Any] = {
    "key": {"type": "string", "description": "opaque, URL-safe run key"},
    "source": {"type": "string"},
    "id": {"type": "string"},
    "type": {"type": "string"},
    "project": {"type": "string"},
    "stage": {"type": "string"},
    "service": {"type": "string"},
    "status": _STATUS,
    "received_at": _TIME,
    "finished_at": _TIME,
}
_SUMMARY = {"type": "object", "required": list(_SUMMARY_PROPS), "properties": _SUMMARY_PROPS}
_PHASES = {
    "type": "object",
    "description": "when the task was queued (event received), submitted, staged (the Job created, "
    "the process spawned), started (pod running) and ended; RFC 3339, UTC",
    "additionalProperties": {"type": "string"},
}
_TASK = {
    "type": "object",
    "required": ["name", "status", "reason", "phases", "job", "logs"],
    "properties": {
        "name": {"type": "string"},
        "index": {"type": "integer"},
        "status": {"type": "string", "enum": ["running", "succeeded", "failed", "timed_out", "lost"]},
        "reason": {"type": "string"},
        "exit_code": {"type": "integer", "nullable": True},
        "phases": _PHASES,
        "result": {"type": "string", "nullable": True, "description": "the result.json the task wrote"},
        "job": {"type": "string", "description": "the Job's (or local work dir's) name"},
        "logs": {"type": "string", "description": "path of the task's log"},
    },
}
_RUN = {
    "type": "object",
    "required": [*_SUMMARY_PROPS, "event", "actions"],
    "properties": {
        **_SUMMARY_PROPS,
        "event": {"type": "object", "nullable": True, "description": "the CloudEvent, as received"},
        "config_digest": {"type": "string", "nullable": True},
        "actions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "status", "tasks"],
                "properties": {
                    "name": {"type": "string"},
                    "index": {"type": "integer"},
                    "status": {"type": "string"},
                    "tasks": {"type": "array", "items": _TASK},
                },
            },
        },
    },
}
_UNAUTHORIZED = {"401": {**_ERROR, "description": "missing or wrong bearer token (RCV_AUTH_TOKEN)"}}


def _query(name: str, schema: dict[str, Any], doc: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": doc}


DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "job-executor runs", "version": "1"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/runs": {
            "get": {
                "summary": "runs, newest first, a page at a time",
                "parameters": [
                    _query("status", _STATUS, "only runs in this status"),
                    _query("project", {"type": "string"}, "only this project"),
                    _query("stage", {"type": "string"}, "only this stage"),
                    _query("service", {"type": "string"}, "only this service"),
                    _query("type", {"type": "string"}, "only this event type"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size (50)"),
                    _query(
                        "before", {"type": "string", "pattern": CURSOR}, "the `next` of the previous page"
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "a page of runs",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["runs", "next"],
                                    "properties": {
                                        "runs": {"type": "array", "items": _SUMMARY},
                                        "next": {"type": "string", "nullable": True},
                                    },
                                }
                            }
                        },
                    },
                    "400": _ERROR,
                    **_UNAUTHORIZED,
                },
            }
        },
        "/api/v1/runs/{key}": {
            "get": {
                "summary": "one run: its event, its actions and their tasks",
                "parameters": [_KEY],
                "responses": {
                    "200": {"description": "the run", "content": {"application/json": {"schema": _RUN}}},
                    "404": _ERROR,
                    **_UNAUTHORIZED,
                },
            }
        },
        "/api/v1/runs/{key}/tasks/{action}/{task}/logs": {
            "get": {
                "summary": "a task's log: the end of its output as kept, or live while it runs",
                "parameters": [
                    _KEY,
                    {"name": "action", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "task", "in": "path", "required": True, "schema": {"type": "string"}},
                    _query("follow", {"type": "string", "enum": ["0", "1"]}, "1: stream until the task ends"),
                ],
                "responses": {
                    "200": {
                        "description": "the log",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "404": _ERROR,
                    **_UNAUTHORIZED,
                },
            }
        },
        "/api/v1/runs/{key}/replay": {
            "post": {
                "summary": "run the event again under a new id",
                "parameters": [
                    _KEY,
                    _query(
                        "config",
                        {"type": "string", "enum": ["pinned", "current"]},
                        "pinned (default): only under the config the run first ran with; current: today's",
                    ),
                ],
                "responses": {
                    "202": {
                        "description": "the new run was accepted",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["key", "id", "replay_of"],
                                    "properties": {
                                        "key": {"type": "string"},
                                        "id": {"type": "string"},
                                        "replay_of": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "400": _ERROR,
                    "404": _ERROR,
                    "429": _ERROR,
                    "503": _ERROR,
                    **_UNAUTHORIZED,
                },
            }
        },
    },
}
