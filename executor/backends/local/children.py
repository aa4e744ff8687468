"""Starting a task's process and learning when it ends, without a thread per process.

asyncio's subprocess support on Python 3.11 waits for each child in a thread of its own and
wraps it in a transport with pipes we never use (the wrapper writes to files). On Linux a
process file descriptor (pidfd) tells the event loop directly when the child ends, which took
a third off the local backend's cost per task (bench/local_spawn.py). Where there is no pidfd
(macOS, kernels before 5.3), asyncio's own way is used.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Child(Protocol):
    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


@functools.cache
def pidfd_supported() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


class _WatchedChild:
    """A child whose end the event loop hears of through its pidfd."""

    def __init__(self, popen: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._popen = popen
        self._loop = loop
        self._ended: asyncio.Future[int] = loop.create_future()
        try:
            fd = os.pidfd_open(popen.pid)
        except OSError:
            # Out of descriptors, say: a thread waits for this one instead, as asyncio would.
            threading.Thread(target=self._wait_in_thread, name=f"wait-{popen.pid}", daemon=True).start()
        else:
            loop.add_reader(fd, self._readable, fd)

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> int:
        # Shielded: a caller that stops waiting (a timeout) leaves the watch in place.
        return await asyncio.shield(self._ended)

    def _readable(self, fd: int) -> None:
        self._loop.remove_reader(fd)
        os.close(fd)
        self._settle(self._popen.wait())  # it has ended: this reaps it at once

    def _wait_in_thread(self) -> None:
        code = self._popen.wait()
        self._loop.call_soon_threadsafe(self._settle, code)

    def _settle(self, code: int) -> None:
        if not self._ended.done():
            self._ended.set_result(code)


@dataclass(frozen=True)
class RunAs:
    """Another user for the task's process (only root can switch): no supplementary groups."""

    uid: int
    gid: int


def _options(pass_fds: Sequence[int], run_as: RunAs | None) -> dict[str, Any]:
    options: dict[str, Any] = {"pass_fds": tuple(pass_fds), "start_new_session": True}
    if run_as is not None:
        options.update(user=run_as.uid, group=run_as.gid, extra_groups=[])
    return options


def _popen(
    argv: Sequence[str], cwd: str, env: Mapping[str, str], options: dict[str, Any]
) -> subprocess.Popen[bytes]:
    null = _devnull()
    return subprocess.Popen(
        list(argv), cwd=cwd, env=dict(env), stdin=null, stdout=null, stderr=null, **options
    )


@functools.cache
def _devnull() -> int:
    """/dev/null, opened once for every child (subprocess.DEVNULL opens it for each one)."""
    return os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)


async def start(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    pass_fds: Sequence[int] = (),
    run_as: RunAs | None = None,
) -> Child:
    """Start `argv` in its own session, with no stdin and its output discarded; `pass_fds` stay
    open in it (the task's lock), `run_as` switches user."""
    options = _options(pass_fds, run_as)
    if pidfd_supported():
        return _WatchedChild(_popen(argv, cwd, env, options), asyncio.get_running_loop())
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        **options,
    )
