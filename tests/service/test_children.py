"""Task processes of the local backend: their exit code arrives, they are reaped, and a wait
that gives up early leaves the watch in place, with a pidfd and in both fallbacks."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor.backends.local import children

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


@pytest.fixture(params=["pidfd", "no pidfd", "pidfd refused"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each way of learning that a child ended: a pidfd; asyncio's own (no pidfd on this
    system); a thread (pidfds exist but this one could not be had, e.g. out of descriptors)."""
    if request.param != "pidfd" and not children.pidfd_supported():
        pytest.skip("no pidfd on this system")
    if request.param == "no pidfd":
        monkeypatch.setattr(children, "pidfd_supported", lambda: False)
    if request.param == "pidfd refused":

        def refuse(pid: int, flags: int = 0) -> int:
            raise OSError(24, "Too many open files")

        monkeypatch.setattr(children.os, "pidfd_open", refuse)
    yield request.param


def reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # a zombie left behind would be reaped here, and seen
    except ChildProcessError:
        return True
    return False


async def test_the_exit_code_arrives_and_the_process_is_reaped(way: str, tmp_path: Path) -> None:
    child = await children.start(["/bin/sh", "-c", "exit 3"], cwd=str(tmp_path), env=ENV)
    assert await asyncio.wait_for(child.wait(), 10) == 3
    assert child.returncode == 3
    assert reaped(child.pid)


async def test_a_wait_that_gives_up_leaves_the_watch_in_place(way: str, tmp_path: Path) -> None:
    child = await children.start(["/bin/sh", "-c", "sleep 0.3; exit 5"], cwd=str(tmp_path), env=ENV)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await child.wait()
    assert child.returncode is None
    assert await asyncio.wait_for(child.wait(), 10) == 5
    assert reaped(child.pid)


async def test_the_child_runs_in_its_own_session_with_the_given_cwd_and_env(way: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = f'echo "$(pwd) $ONLY" > {out}; sleep 0.2'
    child = await children.start(["/bin/sh", "-c", script], cwd=str(tmp_path), env={**ENV, "ONLY": "this"})
    assert os.getsid(child.pid) == child.pid != os.getsid(0)  # its own session: killable as a group
    assert await asyncio.wait_for(child.wait(), 10) == 0
    assert out.read_text().split() == [str(tmp_path), "this"]
