"""A local task owns its work dir and may put anything in place of the files the service reads
there: a symlink to a file only root may read, a FIFO, a forged process record. The service
(root, with tasks run as `nobody`) must read nothing through them, never block on them, and
signal no process but the task's."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor.backends.local import workdir
from executor.backends.local.backend import LocalBackend
from executor.backends.local.isolation import run_as_user
from tests.kubernetes.conftest import make_spec

SECRET = "root-only-secret-4f1c"


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A dir the task's user can reach (pytest's own are under a root-only dir)."""
    path = Path(tempfile.mkdtemp(prefix="jes-tamper-"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "shadow"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


async def test_what_a_task_links_in_place_of_its_log_and_result_is_not_read(
    open_tmp: Path, secret_file: Path
) -> None:
    backend = LocalBackend(open_tmp / "work", run_as=run_as_user("nobody"))
    await backend.start()
    script = (
        'echo some output; rm -f "$HOME/output.log" "$HOME/keptn/result.json"; '
        f'ln -s {secret_file} "$HOME/output.log"; ln -s {secret_file} "$HOME/keptn/result.json"'
    )
    spec = make_spec(cmd=("sh", "-c"), args=(script,))
    handle = await backend.submit(spec, {})
    outcome = await backend.wait(handle, spec)
    assert outcome.ok, outcome
    assert SECRET not in outcome.logs and outcome.result is None
    assert SECRET not in (await backend.live_log(handle.name) or "")


def read_in_a_thread(read: object, path: str) -> tuple[bool, object]:
    """Run read(path) in a daemon thread: (whether it returned within 5 s, what it returned).
    A read that blocks must fail this test, not hang the suite."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(read(path)), daemon=True)  # type: ignore[operator]
    thread.start()
    thread.join(5)
    return (not thread.is_alive(), result[0] if result else None)


@pytest.mark.parametrize("read", [workdir.read, workdir.read_tail], ids=["read", "read_tail"])
def test_a_fifo_or_a_device_in_place_of_a_record_reads_as_nothing(tmp_path: Path, read: object) -> None:
    fifo = tmp_path / "exit"
    os.mkfifo(fifo)
    assert read_in_a_thread(read, str(fifo)) == (True, "")  # open() of it blocked the event loop
    (tmp_path / "zero").symlink_to("/dev/zero")
    assert read_in_a_thread(read, str(tmp_path / "zero")) == (True, "")  # endless, and followed


def test_a_record_is_never_written_through_a_symlink(tmp_path: Path, secret_file: Path) -> None:
    (tmp_path / "started").symlink_to(secret_file)
    with pytest.raises(OSError):
        workdir.write(str(tmp_path / "started"), "overwritten")
    assert secret_file.read_text() == SECRET + "\n"


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A root process in a session of its own: what a forged record names."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def forge_proc(pid: int) -> str:
    """A shell line writing a process record that names `pid` exactly (its start time and boot)."""
    start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    return f'rm -f "$HOME/proc"; echo "{pid} {start} {workdir.boot_id()}" > "$HOME/proc"'


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
async def test_a_forged_process_record_makes_root_signal_nothing_but_the_task(
    open_tmp: Path, bystander: subprocess.Popen[bytes]
) -> None:
    backend = LocalBackend(open_tmp / "work", run_as=run_as_user("nobody"), poll_seconds=0.05)
    await backend.start()
    spec = make_spec(cmd=("sh", "-c"), args=(f"{forge_proc(bystander.pid)}; sleep 30",), max_poll_duration=2)
    handle = await backend.submit(spec, {})
    # Its own child, timed out: the service signals the child it started, not what the record says.
    outcome = await backend.wait(handle, spec)
    assert outcome.status == "timed_out"
    assert bystander.poll() is None
    assert not workdir.running(str(open_tmp / "work" / handle.name))  # the task itself was stopped

    # After a restart only the records tell which process is the task's: a record naming a
    # process that is not the task user's is refused.
    spec = make_spec(cmd=("sh", "-c"), args=(f"{forge_proc(bystander.pid)}; sleep 30",), max_poll_duration=2)
    first = LocalBackend(open_tmp / "work", run_as=run_as_user("nobody"), poll_seconds=0.05)
    handle = await first.submit(spec, {})
    try:
        restarted = LocalBackend(open_tmp / "work", run_as=run_as_user("nobody"), poll_seconds=0.05)
        adopted = await restarted.submit(spec, {})
        assert adopted.adopted
        outcome = await restarted.wait(adopted, spec)
        assert outcome.status == "timed_out"
        assert bystander.poll() is None  # still alive: not the task's to kill
    finally:
        await first.cancel(handle)
