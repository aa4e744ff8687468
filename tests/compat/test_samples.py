"""Issue 12, items 16-17: samples, settings files, docs and `run` tell a JES user the truth."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from .conftest import (
    ROOT,
    SAMPLES,
    clean_env,
    cli,
    emitted,
    free_port,
    make_event,
    one_task,
    output,
    write_config,
)

# --- item 16 ----------------------------------------------------------------------------------


def test_item16_nats_local_env_can_be_sourced() -> None:
    # Its header says `set -a; . samples/deploy/nats-local.env; set +a`; an unquoted `>` is a
    # redirection for bash, so the line must be quoted.
    script = (
        "set -a; . samples/deploy/nats-local.env; set +a; "
        'printf "%s|%s|%s" "$NATS_SUBJECTS" "$NATS_JETSTREAM" "$CONFIG_DIR"'
    )
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == "sh.keptn.event.>|true|samples/resources"


def test_item16_sample_values_allow_the_sample_configs_images() -> None:
    # values-in-cluster-nats.yaml subscribes to sh.keptn.event.test.triggered: the sample carts
    # config (image `locustio/locust`) must be allowed by its own allow-list.
    values = yaml.safe_load((SAMPLES / "deploy" / "values-in-cluster-nats.yaml").read_text())
    allow = values["jobConfig"]["allowedImageList"]
    allow = allow if isinstance(allow, str) else ",".join(allow)
    config = SAMPLES / "resources" / "sockshop" / "dev" / "carts" / "job" / "config.yaml"
    event = SAMPLES / "events" / "test.triggered.json"
    result = cli("render", "--config", str(config), "--event", str(event), "--allowed-images", allow)
    assert result.returncode == 0, result.stderr


def test_item16_state_dir_is_git_ignored() -> None:
    # STATE_DIR defaults to .job-executor (README) and `make demo`/`serve` create it in the checkout.
    lines = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert lines & {".job-executor/", "/.job-executor/", ".job-executor"}, lines


def test_item16_init_files_names_keptn_api_endpoint() -> None:
    result = subprocess.run(
        [*cli_argv(), "init-files"], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert "KEPTN_API_ENDPOINT" in output(result), output(result)


def test_item16_init_files_reads_keptn_api_endpoint(tmp_path: Path) -> None:
    env = clean_env(
        {
            "KEPTN_API_ENDPOINT": "http://127.0.0.1:9/api",
            "KEPTN_API_TOKEN": "t",
            "KEPTN_PROJECT": "sockshop",
            "KEPTN_STAGE": "dev",
            "KEPTN_SERVICE": "carts",
        }
    )
    result = subprocess.run(
        [*cli_argv(), "init-files"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert "KEPTN_API_URL is not set" not in output(result), output(result)


def cli_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "executor"]


class Serve:
    """`job-executor serve` on a free port, stopped at the end (bounded waits throughout)."""

    def __init__(self, tmp_path: Path, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [*cli_argv(), "serve", "--port", "0", "--state-dir", str(tmp_path / "state"), *args],
            cwd=tmp_path,
            env=clean_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.url = ""
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)  # end of output: the process exited

    def wait_serving(self, seconds: float = 20) -> bool:
        """True once serve says where it serves; False when it exits (or is silent) first."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                return False
            if line is None:
                return False
            self.lines.append(line)
            m = re.search(r"serving on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                return True
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is not None:
                self.lines.append(line)


def test_item16_serve_not_ready_without_config_dir(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-tree"
    serve = Serve(tmp_path, {}, "--config-dir", str(missing))
    try:
        if not serve.wait_serving():
            serve.stop()
            assert serve.proc.returncode != 0
            assert "CONFIG_DIR" in "".join(serve.lines), serve.lines
            return
        try:
            with urllib.request.urlopen(serve.url.rstrip("/") + "/readyz", timeout=5) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == 503, f"/readyz answered {status} while {missing} does not exist"
    finally:
        serve.stop()


def test_item16_keptn_mode_start_line_names_the_api(tmp_path: Path) -> None:
    env = {"CONFIG_SOURCE": "keptn", "KEPTN_API_ENDPOINT": "http://127.0.0.1:9/api", "KEPTN_API_TOKEN": "t"}
    serve = Serve(tmp_path, env)
    try:
        assert serve.wait_serving(), serve.lines
    finally:
        serve.stop()
    (start,) = [line for line in serve.lines if "listening on" in line]
    assert "samples/resources" not in start, start
    assert "127.0.0.1:9" in start, start


def test_item16_docs_say_how_to_put_job_executor_on_path() -> None:
    docs = (ROOT / "README.md").read_text() + (ROOT / "FEATURES.md").read_text()
    assert re.search(r"PATH=[^\n]*\.venv/bin|\.venv/bin/activate", docs), (
        "no word on putting job-executor on PATH"
    )


# --- item 17: `run` says what it ignores ------------------------------------------------------


def test_item17_run_says_what_it_ignores(tmp_path: Path) -> None:
    extra = 'serviceAccount: "carts-reader"\nimagePullPolicy: "Always"\nsecurityContext:\n  runAsUser: 7000\n'
    config = write_config(tmp_path, one_task(image="alpine:3.20", extra=extra))
    event = make_event(tmp_path / "event.json")
    result = cli("run", "--config", str(config), "--event", str(event), timeout=60)
    assert result.returncode == 0, output(result)
    assert [e["data"]["status"] for e in emitted(result.stdout)] == ["succeeded", "succeeded"]
    notes = result.stderr.replace("hello\n", "")
    for word in ("alpine:3.20", "serviceAccount", "securityContext", "imagePullPolicy"):
        assert word in notes, f"run did not say it ignores {word}: {result.stderr!r}"


@pytest.mark.parametrize("image", ["alpine:3.20", "locustio/locust"])
def test_item17_run_says_the_image_is_not_used(tmp_path: Path, image: str) -> None:
    config = write_config(tmp_path, one_task(image=image))
    event = make_event(tmp_path / "event.json")
    result = cli("run", "--config", str(config), "--event", str(event), timeout=60)
    assert result.returncode == 0, output(result)
    assert image in result.stderr, result.stderr
    assert "serviceAccount" not in result.stderr  # only what the config asks for


def test_make_demo_handles_its_sample_event() -> None:
    # README's first command (`make demo` runs samples/demo.py): the sample event's task must
    # succeed, also when the suite runs as root and tasks run as `nobody` (the demo's temporary
    # state folder was its owner's alone, and every task ended "without an exit code").
    env = clean_env({"DEMO_PORT": str(free_port())})
    result = subprocess.run(
        [sys.executable, "samples/demo.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    finished = [
        json.loads(line)
        for line in result.stdout.splitlines()
        if line.startswith("{") and ".finished" in line
    ]
    assert [event["data"]["status"] for event in finished] == ["succeeded"], result.stdout + result.stderr
