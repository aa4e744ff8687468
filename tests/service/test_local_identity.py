"""The local backend's task identity and process identity (issue 13, items 1, 2, 5, 8, 9)."""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from executor.backends.base import BackendError
from executor.backends.local import backend as local_backend
from executor.backends.local import children, isolation, workdir
from executor.backends.local.backend import LocalBackend
from executor.backends.local.isolation import run_as_user
from executor.backends.naming import spec_job_name
from executor.model.errors import Temporary
from executor.model.tasks import TaskSpec
from executor.state import StateStore
from tests.kubernetes.conftest import make_spec

UUID = "f2b878d3-03c0-4e8f-bc3f-454bc1b3d79b"


def shell(script: str, **changes: Any) -> TaskSpec:
    return make_spec(cmd=("sh", "-c"), args=(script,), **changes)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process that is not ours to touch, in a session of its own (as a task's would be)."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A dir the task's user can reach (pytest's own are under a root-only dir)."""
    path = Path(tempfile.mkdtemp(prefix="jes-isolation-"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_same_id_from_two_sources_runs_two_tasks(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "work")
    await backend.start()
    a = shell("echo from-a", event_id=UUID)
    b = shell("echo from-b", event_id=UUID)
    b = replace(b, trigger=replace(b.trigger, event_source="other-project"))
    outcomes = []
    for spec in (a, b):
        handle = await backend.submit(spec, {})
        assert not handle.adopted
        outcomes.append(await backend.wait(handle, spec))
    assert [o.logs.strip() for o in outcomes] == ["from-a", "from-b"]


async def test_a_work_dir_of_another_event_is_refused_loudly(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "work")
    await backend.start()
    spec = shell("echo mine")
    work = tmp_path / "work" / spec_job_name(spec)
    work.mkdir(parents=True)
    workdir.write_identity(str(work), "another-source", "another-id")
    (work / "exit").write_text("0\n")
    with pytest.raises(BackendError, match=r"belongs to another event.*'another-id'"):
        await backend.submit(spec, {})


class Stopped(Exception):
    """Stands for a kill -9 at a crash point (the real one is tests/faults' business)."""


async def test_a_claimed_but_never_started_task_starts_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stop_at(point: str) -> None:
        if point == "local.claimed":
            raise Stopped(point)

    monkeypatch.setattr(local_backend, "crash_point", stop_at)
    spec = shell("cat /keptn/input.txt", files=("input.txt",))
    with pytest.raises(Stopped):
        await LocalBackend(tmp_path / "work").submit(spec, {"input.txt": b"staged"})
    monkeypatch.undo()

    restarted = LocalBackend(tmp_path / "work")
    await restarted.start()
    handle = await restarted.submit(spec, {"input.txt": b"staged"})
    outcome = await restarted.wait(handle, spec)
    assert (outcome.status, outcome.logs) == ("succeeded", "staged")
    # And a third submit (a redelivery) adopts it: still one run.
    again = await restarted.submit(spec, {"input.txt": b"staged"})
    assert again.adopted
    assert (await restarted.wait(again, spec)).logs == "staged"


async def test_a_reused_pid_is_neither_waited_for_nor_signalled(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    # After a reboot the task's recorded pid names another process (here: `sleep`).
    spec = shell("echo never", max_poll_duration=3)
    work = tmp_path / "work" / spec_job_name(spec)
    work.mkdir(parents=True)
    workdir.write_identity(str(work), spec.trigger.event_source, spec.trigger.event_id)
    (work / "pid").write_text(f"{sleeper.pid}\n")
    (work / "proc").write_text(f"{sleeper.pid} 1 {workdir.boot_id()}")  # started long before
    (work / "lock").write_text("")
    backend = LocalBackend(tmp_path / "work", poll_seconds=0.01)
    await backend.start()
    assert await backend.adopt() == []
    handle = await backend.submit(spec, {})
    assert handle.adopted
    outcome = await backend.wait(handle, spec)
    assert outcome.status == "lost" and "exit code was lost" in outcome.reason
    await backend.cancel(handle)
    assert sleeper.poll() is None  # still alive: not ours to kill


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.EAGAIN])
async def test_running_out_of_descriptors_is_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    real = children.start

    async def exhausted(*args: Any, **kwargs: Any) -> children.Child:
        raise OSError(code, os.strerror(code))

    backend = LocalBackend(tmp_path / "work")
    await backend.start()
    spec = shell("echo ran")
    monkeypatch.setattr(children, "start", exhausted)
    with pytest.raises(Temporary, match=os.strerror(code)) as raised:
        await backend.submit(spec, {})
    assert isinstance(raised.value, BackendError)
    monkeypatch.setattr(children, "start", real)
    handle = await backend.submit(spec, {})  # the dispatcher's retry
    assert not handle.adopted
    assert (await backend.wait(handle, spec)).logs.strip() == "ran"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
async def test_a_task_run_as_nobody_sees_only_its_own_secrets_masked(open_tmp: Path) -> None:
    tmp_path = open_tmp
    secrets = tmp_path / "secrets"
    for name, key, value in (("db", "password", "hunter2-db-value"), ("other", "token", "other-value-x")):
        (secrets / name).mkdir(parents=True)
        (secrets / name / key).write_text(value)
    state = tmp_path / "state"
    StateStore(state / "state.db").close()
    backend = LocalBackend(state / "work", secrets, run_as=run_as_user("nobody"))
    await backend.start()
    script = (
        'echo "pw=$password token=${token:-unset}"; id -u; '
        f"cat {state}/state.db >/dev/null 2>&1 || echo state-unreadable; "
        f"cat /proc/{os.getpid()}/environ >/dev/null 2>&1 || echo environ-unreadable; "
        "echo $password >&2; exit 3"
    )
    spec = shell(script, secret_refs=("db",))
    outcome = await backend.wait(await backend.submit(spec, {}), spec)
    lines = outcome.logs.splitlines()
    assert len(lines) == 5, outcome
    assert lines[0] == "pw=*** token=unset"
    assert lines[1] == str(pwd.getpwnam("nobody").pw_uid)
    assert "state-unreadable" in lines and "environ-unreadable" in lines
    assert "hunter2" not in outcome.logs and lines[-1] == "***"
    assert outcome.status == "failed" and outcome.exit_code == 3


def test_run_as_user_names_an_unknown_user() -> None:
    if os.geteuid() != 0:
        assert run_as_user("no-such-user-here") is None
        return
    with pytest.raises(ValueError, match="LOCAL_RUN_AS_USER='no-such-user-here': no such user"):
        run_as_user("no-such-user-here")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
async def test_a_work_root_the_tasks_user_cannot_reach_is_said_with_the_fix(
    open_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # serve as root with its state under root's home (0700): every task, run as nobody, could
    # write neither its pid nor its exit code, and ended "without an exit code".
    home = open_tmp / "home"
    home.mkdir(mode=0o700)
    backend = LocalBackend(home / "state" / "work", run_as=run_as_user("nobody"))
    await backend.start()
    assert f"cannot pass through {home} " in caplog.text
    spec = shell("echo ran")
    outcome = await backend.wait(await backend.submit(spec, {}), spec)
    assert outcome.status == "failed"
    assert f"run `chmod o+x {home}`" in outcome.reason and "STATE_DIR" in outcome.reason
    # Fixed by the chmod it names, without a restart.
    home.chmod(0o711)
    spec = shell("echo ran again")
    outcome = await backend.wait(await backend.submit(spec, {}), spec)
    assert (outcome.status, outcome.logs.strip()) == ("succeeded", "ran again")


def test_the_first_folder_the_tasks_user_cannot_pass_is_named(open_tmp: Path) -> None:
    other = children.RunAs(uid=os.getuid() + 12345, gid=os.getgid() + 12345)
    outer = open_tmp / "outer"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    outer.chmod(0o710)  # group only: not this user's group
    inner.chmod(0o700)
    assert isolation.unreachable(inner / "work", other) == str(outer)
    outer.chmod(0o711)
    assert isolation.unreachable(inner / "work", other) == str(inner)
    inner.chmod(0o701)
    assert isolation.unreachable(inner / "work", other) == ""  # the rest is made by start()
