"""`job-executor runs | runs show KEY | logs KEY [ACTION TASK] | replay KEY`: the run history API
read from the command line. The server defaults to RCV_HOST:RCV_PORT, the token to RCV_AUTH_TOKEN."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import IO, Any

from executor.settings import Settings

COLOURS = {"succeeded": "32", "failed": "31", "errored": "31", "running": "33", "queued": "36"}


class ApiError(Exception):
    pass


def register(commands: Any) -> None:
    """Add the subcommands to `job-executor`'s parser."""
    runs = commands.add_parser("runs", help="list runs (or `runs show KEY`) from a running service")
    runs.add_argument("show", nargs="?", choices=("show",), help=argparse.SUPPRESS)
    runs.add_argument("key", nargs="?", help="with `show`: the run's key")
    runs.add_argument("--status", choices=("queued", "running", "succeeded", "failed", "errored"))
    runs.add_argument("--project")
    runs.add_argument("--limit", type=int, default=20)
    _common(runs)
    runs.set_defaults(handler=cmd_runs)
    logs = commands.add_parser("logs", help="a run's task logs (all tasks, or ACTION TASK)")
    logs.add_argument("key")
    logs.add_argument("action", nargs="?")
    logs.add_argument("task", nargs="?")
    logs.add_argument("--follow", "-f", action="store_true", help="stream until the task ends")
    _common(logs)
    logs.set_defaults(handler=cmd_logs)
    replay = commands.add_parser("replay", help="run a run's event again under a new id")
    replay.add_argument("key")
    replay.add_argument("--config", choices=("pinned", "current"), default="pinned")
    _common(replay)
    replay.set_defaults(handler=cmd_replay)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", help="the service's URL (default http://RCV_HOST:RCV_PORT)")
    parser.add_argument("--output", "-o", choices=("table", "json"), default="table")


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        receiver = Settings.from_env().receiver
        host = "127.0.0.1" if receiver.host in ("", "0.0.0.0", "::") else receiver.host
        self.base = (args.server or f"http://{host}:{receiver.port}").rstrip("/")
        self.token = receiver.auth_token

    def open(self, path: str, method: str = "GET") -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = urllib.request.Request(self.base + path, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=30)
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            with contextlib.suppress(ValueError, KeyError, TypeError):
                body = json.loads(body)["error"]
            hint = " (set RCV_AUTH_TOKEN)" if exc.code == 401 else ""
            raise ApiError(f"{self.base}{path}: {exc.code} {body}{hint}") from None
        except urllib.error.URLError as exc:
            raise ApiError(
                f"cannot reach {self.base} ({exc.reason}); is `job-executor serve` running?"
            ) from None

    def json(self, path: str, method: str = "GET") -> Any:
        with self.open(path, method) as response:
            return json.loads(response.read())


def _run(handler: Any, args: argparse.Namespace) -> int:
    try:
        return int(handler(Client(args), args, sys.stdout))
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def cmd_runs(args: argparse.Namespace) -> int:
    return _run(_runs, args)


def cmd_logs(args: argparse.Namespace) -> int:
    return _run(_logs, args)


def cmd_replay(args: argparse.Namespace) -> int:
    return _run(_replay, args)


def _runs(client: Client, args: argparse.Namespace, out: IO[str]) -> int:
    if args.show:
        if not args.key:
            raise ApiError("runs show needs a KEY (from `job-executor runs`)")
        run = client.json(f"/api/v1/runs/{args.key}")
        if args.output == "json":
            out.write(json.dumps(run, indent=2) + "\n")
            return 0
        out.write(f"{run['type']} {run['id']} from {run['source']}: {_status(run['status'], out)}\n")
        for action in run["actions"]:
            for task in action["tasks"]:
                reason = f" ({task['reason']})" if task["reason"] else ""
                line = f"  {action['name']}/{task['name']}: {_status(task['status'], out)}{reason}"
                out.write(line + f" {task['job']}\n")
        return 0
    query = {"limit": str(args.limit), "status": args.status or "", "project": args.project or ""}
    page = client.json("/api/v1/runs?" + urllib.parse.urlencode({k: v for k, v in query.items() if v}))
    if args.output == "json":
        out.write(json.dumps(page, indent=2) + "\n")
        return 0
    for run in page["runs"]:
        where = "/".join(p for p in (run["project"], run["stage"], run["service"]) if p)
        out.write(
            f"{run['key']}  {_status(run['status'], out):<10}  {_ago(run['received_at']):>8}  "
            f"{run['type']}  {where}  {run['id']}\n"
        )
    return 0


def _logs(client: Client, args: argparse.Namespace, out: IO[str]) -> int:
    if args.action and args.task:
        tasks = [(args.action, args.task)]
    else:
        run = client.json(f"/api/v1/runs/{args.key}")
        tasks = [(a["name"], t["name"]) for a in run["actions"] for t in a["tasks"]]
    for action, task in tasks:
        if len(tasks) > 1:
            out.write(f"==> {action}/{task} <==\n")
        path = f"/api/v1/runs/{args.key}/tasks/{_q(action)}/{_q(task)}/logs"
        with client.open(path + ("?follow=1" if args.follow else "")) as response:
            while chunk := response.read1(65536):  # as it arrives, for --follow
                out.write(chunk.decode("utf-8", "replace"))
                out.flush()
    return 0


def _replay(client: Client, args: argparse.Namespace, out: IO[str]) -> int:
    answer = client.json(f"/api/v1/runs/{args.key}/replay?config={args.config}", method="POST")
    out.write((json.dumps(answer) if args.output == "json" else answer["key"]) + "\n")
    return 0


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _status(status: str, out: IO[str]) -> str:
    colour = COLOURS.get(status)
    return f"\033[{colour}m{status}\033[0m" if colour and out.isatty() else status


def _ago(stamp: str | None) -> str:
    if not stamp:
        return ""
    seconds = time.time() - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(max(seconds, 0))}s ago"
