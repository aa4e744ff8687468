"""What a task is given (issue 15), the same on both backends: the event as /keptn/event.json,
its place (JOB_ACTION, JOB_TASK, JOB_TASK_INDEX, JOB_CONFIG_LEVEL, GIT_COMMIT_ID), `env` entries
over secret keys (a later secret over an earlier one), and `secretFiles` as read-only files.

One test, parametrized over the backends: the local backend runs the task, which reports what it
found; the Kubernetes backend creates its Job in the fake API server, and the kubelet's rules
(tests/kubeapi/kubelet.py) tell what the container would find there.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import tempfile
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from executor.app.runonce import ignored_note
from executor.backends.kubernetes.backend import KubernetesBackend
from executor.backends.local import context as local_context
from executor.backends.local.backend import LocalBackend
from executor.backends.local.isolation import run_as_user
from executor.config.parse import parse_config
from executor.model.events import Event, event_from_mapping
from executor.model.tasks import TaskSpec
from executor.planner import MAX_EVENT_ANNOTATION, plan_action
from executor.settings import Settings
from tests.compat.conftest import cli, objects, output
from tests.kubeapi.kubelet import container_view, fake_lookup, manifest_lookup, template_pod
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import NAMESPACE, no_validation_errors

SECRETS = {
    "db": {"TOKEN": "db-token-value", "SHARED": "from-db", "DB_USER": "carts"},
    "extra": {"SHARED": "from-extra"},
    "kube": {"config": "apiVersion: v1\nkind: Config\nclusters: []\n"},
}
# Reports each variable (NUL-separated, values may hold newlines) and, for each path given as an
# argument, its content and mode, into the work dir ($HOME) of the local backend.
SCRIPT = (
    'env -0 > "$HOME/env.seen"; i=0; for p in "$@"; do i=$((i+1)); '
    'cat "$p" > "$HOME/file.$i"; stat -c %a "$p" > "$HOME/mode.$i"; done'
)
PATHS = ("/keptn/event.json", "/etc/kube/config")
CONFIG = f"""\
apiVersion: v2
actions:
  - name: "Check"
    events:
      - name: "sh.keptn.event.test.triggered"
    tasks:
      - name: "First"
        image: "alpine:3.20"
        cmd: ["true"]
      - name: "Look"
        image: "alpine:3.20"
        namespace: {NAMESPACE}
        cmd: ["sh", "-c", {json.dumps(SCRIPT)}, "sh", "{PATHS[0]}", "{PATHS[1]}"]
        env:
          - name: db
            valueFrom: secret
          - name: extra
            valueFrom: secret
          - name: TOKEN
            valueFrom: string
            value: "from-env"
        secretFiles:
          - name: kube
            mountPath: /etc/kube
"""


@dataclass(frozen=True)
class Seen:
    env: dict[str, str]
    files: dict[str, tuple[bytes, int]]  # path -> content, mode


Look = Callable[[TaskSpec], Awaitable[Seen]]


def event_of(size: int) -> Event:
    return event_from_mapping(
        {
            "specversion": "1.0",
            "id": "4a1c7a1e-0c55-4c3e-9d4c-5a7a3c2b9f10",
            "source": "shipyard-controller",
            "type": "sh.keptn.event.test.triggered",
            "shkeptncontext": "08735340-6f9e-4b32-97ff-3b6c292bc50a",
            "gitcommitid": "6a1b2c3d",
            "data": {"project": "sockshop", "stage": "dev", "service": "carts", "padding": "x" * size},
        }
    )


def plan(event: Event, config_text: str = CONFIG) -> TaskSpec:
    cfg = parse_config(config_text)
    return plan_action(event, cfg.actions[0], cfg, Settings(), level="service")[1]


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A dir the task's user (nobody, when the tests run as root) can reach."""
    path = Path(tempfile.mkdtemp(prefix="jes-context-"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_secrets(root: Path) -> Path:
    for name, keys in SECRETS.items():
        (root / name).mkdir(parents=True)
        for key, value in keys.items():
            (root / name / key).write_text(value)
    return root


@pytest.fixture(params=["local", "kubernetes"])
async def look(
    request: pytest.FixtureRequest, open_tmp: Path, kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> AsyncIterator[Look]:
    if request.param == "local":
        work = open_tmp / "work"
        local = LocalBackend(work, write_secrets(open_tmp / "secrets"), run_as=run_as_user("nobody"))
        await local.start()

        async def run_locally(spec: TaskSpec) -> Seen:
            handle = await local.submit(spec, {})
            outcome = await local.wait(handle, spec)
            assert outcome.ok, outcome
            home = work / handle.name
            env = dict(v.split("=", 1) for v in (home / "env.seen").read_text().split("\0") if v)
            files = {
                path: ((home / f"file.{i}").read_bytes(), int((home / f"mode.{i}").read_text(), 8))
                for i, path in enumerate(PATHS, start=1)
            }
            assert not (home / "secrets").exists()  # the copies are gone once the task ended
            return Seen(env, files)

        yield run_locally
        await local.close()
        return

    for name, keys in SECRETS.items():
        kube_api.create(
            "secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "stringData": keys,
            },
        )

    async def run_in_fake_cluster(spec: TaskSpec) -> Seen:
        handle = await backend.submit(spec, {})
        kube_api.set_job_running(NAMESPACE, handle.name)
        pod = kube_api.job_pod(NAMESPACE, handle.name)
        assert pod is not None
        view = container_view(pod, handle.name, fake_lookup(kube_api, NAMESPACE))
        no_validation_errors(kube_api)
        return Seen(view.env, {p: (view.files[p].data, view.files[p].mode) for p in PATHS})

    yield run_in_fake_cluster


# Small: the event rides on the Job's annotation; large: over it (and over the 128 KiB a local
# variable could hold), in the ConfigMap the Job owns.
@pytest.mark.parametrize("size", [100, 200 * 1024], ids=["small-event", "large-event"])
async def test_a_task_is_given_its_event_place_env_and_secret_files(look: Look, size: int) -> None:
    event = event_of(size)
    assert (len(event.to_json()) > MAX_EVENT_ANNOTATION) == (size > MAX_EVENT_ANNOTATION)
    seen = await look(plan(event))

    event_file, _mode = seen.files["/keptn/event.json"]
    assert json.loads(event_file) == json.loads(event.to_json())
    assert json.loads(event_file)["data"]["padding"] == "x" * size
    wanted = {
        "JOB_ACTION": "Check",
        "JOB_TASK": "Look",
        "JOB_TASK_INDEX": "2",
        "JOB_CONFIG_LEVEL": "service",
        "GIT_COMMIT_ID": "6a1b2c3d",
        "KEPTN_SERVICE": "carts",
        # An `env` entry wins over a secret's key; a later secret over an earlier one.
        "TOKEN": "from-env",
        "SHARED": "from-extra",
        "DB_USER": "carts",
    }
    assert {k: seen.env.get(k) for k in wanted} == wanted
    # Where the task finds the event: /keptn/event.json, which locally is in its work dir.
    assert seen.env["JOB_EVENT_FILE"].endswith("/keptn/event.json")

    secret_file, mode = seen.files["/etc/kube/config"]
    assert secret_file == SECRETS["kube"]["config"].encode()
    assert mode == 0o400


async def test_the_event_file_path_points_at_the_event(open_tmp: Path) -> None:
    # Locally the task reads the file through $JOB_EVENT_FILE, which points into its work dir.
    backend = LocalBackend(open_tmp / "work", run_as=run_as_user("nobody"))
    await backend.start()
    config = textwrap.dedent("""\
        apiVersion: v2
        actions:
          - name: "A"
            events: [{name: "sh.keptn.event.test.triggered"}]
            tasks:
              - name: "T"
                image: "alpine:3.20"
                cmd: ["sh", "-c", 'cat "$JOB_EVENT_FILE"']
        """)
    event = event_of(10)
    cfg = parse_config(config)
    (spec,) = plan_action(event, cfg.actions[0], cfg, Settings(), level="file")
    outcome = await backend.wait(await backend.submit(spec, {}), spec)
    assert outcome.ok, outcome
    assert json.loads(outcome.logs) == json.loads(event.to_json())


def test_render_and_run_give_a_variable_the_same_value(tmp_path: Path) -> None:
    """One config through `render` (what the container would see, by the kubelet's rules) and
    `run` (the local backend): an `env` entry wins over a secret's key of the same name, a
    later secret's key over an earlier one's."""
    config = tmp_path / "job" / "config.yaml"
    config.parent.mkdir()
    config.write_text(
        textwrap.dedent("""\
        apiVersion: v2
        actions:
          - name: "A"
            events: [{name: "sh.keptn.event.test.triggered"}]
            tasks:
              - name: "T"
                image: "alpine:3.20"
                cmd: ["sh", "-c", 'echo "TOKEN=$TOKEN SHARED=$SHARED"']
                env:
                  - {name: TOKEN, valueFrom: string, value: from-env}
                  - {name: db, valueFrom: secret}
                  - {name: extra, valueFrom: secret}
        """)
    )
    event = tmp_path / "event.json"
    event.write_text(json.dumps(json.loads(event_of(10).to_json())))
    secrets_dir = write_secrets(tmp_path / "secrets")
    os.chmod(tmp_path, 0o755)

    rendered = cli("render", "--config", str(config), "--event", str(event))
    assert rendered.returncode == 0, output(rendered)
    (job,) = [o for o in objects(rendered.stdout) if o["kind"] == "Job"]
    secrets: list[dict[str, Any]] = [
        {"kind": "Secret", "metadata": {"name": n}, "data": {k: _b64(v) for k, v in keys.items()}}
        for n, keys in SECRETS.items()
    ]
    name = job["metadata"]["name"]
    env = container_view(template_pod(job), name, manifest_lookup(secrets)).env

    ran = cli(
        "run", "--config", str(config), "--event", str(event), env={"LOCAL_SECRETS_DIR": str(secrets_dir)}
    )
    assert ran.returncode == 0, output(ran)
    local_line = f"TOKEN={env['TOKEN']} SHARED={env['SHARED']}"
    assert local_line == "TOKEN=from-env SHARED=from-extra"
    assert local_line in output(ran)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_a_large_events_configmap_is_owned_by_its_job(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    # Garbage-collected with its Job, like the staged files' ConfigMap.
    spec = plan(event_of(200 * 1024))
    handle = await backend.submit(spec, {})
    job = kube_api.get("jobs", NAMESPACE, handle.name)
    configmap = kube_api.get("configmaps", NAMESPACE, handle.name)
    assert job is not None and configmap is not None
    assert [(o["kind"], o["uid"]) for o in configmap["metadata"]["ownerReferences"]] == [
        ("Job", job["metadata"]["uid"])
    ]
    no_validation_errors(kube_api)


async def test_a_local_secret_file_is_the_tasks_alone_and_masked_in_its_output(open_tmp: Path) -> None:
    backend = LocalBackend(
        open_tmp / "work", write_secrets(open_tmp / "secrets"), run_as=run_as_user("nobody")
    )
    await backend.start()
    config = textwrap.dedent("""\
        apiVersion: v2
        actions:
          - name: "A"
            events: [{name: "sh.keptn.event.test.triggered"}]
            tasks:
              - name: "T"
                image: "alpine:3.20"
                cmd: ["sh", "-c", 'ls -ln /etc/db; cat /etc/db/TOKEN; echo; echo x > /etc/db/new || echo read-only; od -An -tx1 /etc/store/keystore']
                secretFiles: [{name: db, mountPath: /etc/db}, {name: store, mountPath: /etc/store}]
        """)
    (open_tmp / "secrets" / "store").mkdir()
    (open_tmp / "secrets" / "store" / "keystore").write_bytes(bytes([0xFE, 0xED, 0x00, 0xFF]))
    cfg = parse_config(config)
    (spec,) = plan_action(event_of(10), cfg.actions[0], cfg, Settings(), level="file")
    handle = await backend.submit(spec, {})
    outcome = await backend.wait(handle, spec)
    assert outcome.ok, outcome
    assert "db-token-value" not in outcome.logs and "***" in outcome.logs.splitlines()
    assert "read-only" in outcome.logs
    uid = os.geteuid() if run_as_user("nobody") is None else pwd.getpwnam("nobody").pw_uid
    listed = [line.split() for line in outcome.logs.splitlines() if line.startswith("-")]
    assert sorted((f[0], f[2], f[-1]) for f in listed) == [
        ("-r--------", str(uid), key) for key in sorted(SECRETS["db"])
    ]
    assert "fe ed 00 ff" in outcome.logs  # a binary key, byte for byte
    assert ignored_note(cfg.actions[0].tasks[0]).endswith(
        "secretFiles: /etc/db is <work dir>/secrets/etc/db, /etc/store is <work dir>/secrets/etc/store"
    )


def test_secret_files_are_copied_again_after_a_start_that_was_stopped(tmp_path: Path) -> None:
    # A claimed task whose start was stopped half-way is started anew (LocalBackend._unstarted_claim).
    cfg = parse_config(CONFIG)
    spec = plan_action(event_of(10), cfg.actions[0], cfg, Settings(), level="file")[1]
    work = tmp_path / "work"
    (work / "keptn").mkdir(parents=True)
    secrets_dir = write_secrets(tmp_path / "secrets")
    local_context.copy_secret_files(spec, str(work), secrets_dir)
    local_context.copy_secret_files(spec, str(work), secrets_dir)
    assert (work / "secrets" / "etc" / "kube" / "config").read_text() == SECRETS["kube"]["config"]
