"""Issue 16 (3, 4): the run history over HTTP: list, show with phase times, logs kept after the
work dir is gone, follow while a task runs, replay; phase times in the finished event."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import urllib.request
from pathlib import Path

import pytest

from executor.history import RunHistory
from executor.state import StateStore
from tests.observe.servers import serving

pytestmark = pytest.mark.slow
PHASES = ("queued", "submitted", "staged", "started", "ended")


def test_a_run_is_listed_shown_and_its_log_outlives_the_work_dir(tmp_path: Path) -> None:
    with serving(tmp_path) as serve:
        serve.post_event("api-1")
        summary = serve.wait_run()
        assert summary["id"] == "api-1" and summary["project"] == "shop" and summary["finished_at"]
        run = serve.get(f"/api/v1/runs/{summary['key']}")
        assert run["event"]["id"] == "api-1"
        [action] = run["actions"]
        [task] = action["tasks"]
        assert (action["name"], task["name"], task["status"]) == ("Test", "Greet", "succeeded")
        assert set(task["phases"]) == set(PHASES)
        assert task["phases"]["queued"] <= task["phases"]["submitted"] <= task["phases"]["ended"]
        shutil.rmtree(tmp_path / "state" / "work")
        assert serve.get(task["logs"]) == "hello from the run page\n"
        assert serve.get("/api/v1/runs?status=failed")["runs"] == []
        assert serve.get("/api/v1/runs?project=other")["runs"] == []


def test_follow_streams_while_the_task_runs_and_replay_runs_it_again(tmp_path: Path) -> None:
    with serving(tmp_path, {"SLEEP": "2"}) as serve:
        serve.post_event("api-2")
        summary = serve.wait_run("running")
        logs = f"/api/v1/runs/{summary['key']}/tasks/Test/Greet/logs?follow=1"
        got: list[bytes] = []

        def follow() -> None:
            with urllib.request.urlopen(serve.base + logs, timeout=30) as response:
                got.append(response.readline())  # the line arrives before the task ends
                got.append(response.read())

        reader = threading.Thread(target=follow)
        reader.start()
        reader.join(30)
        assert got[0] == b"hello from the run page\n", got
        assert serve.get(f"/api/v1/runs/{summary['key']}")["status"] == "succeeded"
        request = urllib.request.Request(f"{serve.base}/api/v1/runs/{summary['key']}/replay", method="POST")
        with urllib.request.urlopen(request) as response:
            answer = json.loads(response.read())
        assert answer["replay_of"] == summary["key"] and answer["id"].startswith("api-2.replay-")
        replayed = [r for r in serve.get("/api/v1/runs")["runs"] if r["key"] == answer["key"]]
        assert replayed, "the replay is in the history at once"


def test_the_finished_event_carries_phase_times_under_our_key(tmp_path: Path) -> None:
    # No sink is set, so reports go to stdout: the service's log file here.
    with serving(tmp_path) as serve:
        serve.post_event("api-3")
        serve.wait_run()
        text = serve.log.read_text()
    finished = [
        json.loads(line) for line in text.splitlines() if line.startswith("{") and ".finished" in line
    ]
    assert finished, text
    [task] = finished[0]["data"]["jobexecutor"]["tasks"]
    assert task["name"] == "Greet" and set(task["phases"]) == set(PHASES)


def test_an_older_database_gains_the_history_columns(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE runs (source TEXT NOT NULL, id TEXT NOT NULL, event TEXT NOT NULL, state TEXT NOT NULL,"
        " received_at REAL NOT NULL, config_digest TEXT, PRIMARY KEY (source, id));"
        "CREATE TABLE tasks (source TEXT NOT NULL, id TEXT NOT NULL, action INTEGER NOT NULL,"
        " task INTEGER NOT NULL, outcome TEXT NOT NULL, PRIMARY KEY (source, id, action, task));"
    )
    event = {"id": "old", "source": "s", "type": "t.triggered", "data": {"project": "p", "stage": "d"}}
    db.execute("INSERT INTO runs VALUES ('s', 'old', ?, 'done', 1.0, NULL)", (json.dumps(event),))
    db.execute(
        "INSERT INTO tasks VALUES ('s', 'old', 0, 1, ?)", (json.dumps({"status": "succeeded", "logs": "x"}),)
    )
    db.commit()
    db.close()
    history = RunHistory(StateStore(path))
    [row] = history.list_runs({"project": "p"}, 10)
    assert (row.type, row.stage, row.status) == ("t.triggered", "d", "succeeded")
    [task] = history.run_tasks("s", "old")
    assert task.outcome == {"status": "succeeded", "logs": "x"} and task.phases == {}


def test_the_cli_lists_shows_prints_logs_and_replays(tmp_path: Path) -> None:
    import subprocess
    import sys

    with serving(tmp_path, {"RCV_AUTH_TOKEN": "cli-token"}) as serve:
        serve.post_event("cli-1")
        key = serve.wait_run()["key"]
        env = {**serve.env, "RCV_HOST": "127.0.0.1"}

        def cli(*args: str) -> str:
            done = subprocess.run(
                [sys.executable, "-m", "executor", *args], env=env, capture_output=True, text=True, timeout=30
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        listed = cli("runs", "--status", "succeeded")
        assert key in listed and "succeeded" in listed and "cli-1" in listed
        assert json.loads(cli("runs", "--output", "json"))["runs"][0]["key"] == key
        assert "Test/Greet: succeeded" in cli("runs", "show", key)
        assert cli("logs", key, "Test", "Greet") == "hello from the run page\n"
        assert cli("replay", key).strip() != key
        refused = subprocess.run(
            [sys.executable, "-m", "executor", "runs"],
            env={**env, "RCV_AUTH_TOKEN": "wrong"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert refused.returncode == 1 and "401" in refused.stderr and "RCV_AUTH_TOKEN" in refused.stderr
