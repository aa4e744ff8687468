"""A local task's work dir as the record of who claimed it and whether its process still runs.

The work dir is created with mkdir: the claim. Right after it we write which event the task
belongs to (`identity`), so that a later submit (a redelivery, a resume after a crash) adopts
only its own task and refuses a dir of another event loudly instead of reporting that event's
output as its own.

Whether the task's process still runs is told by a lock, not by a pid: the service takes an
exclusive flock on `<work>/lock` before it spawns and hands that open file to the wrapper, so the
lock is held exactly as long as the wrapper (or the task) lives, and is released by the kernel
when they end, even after a kill -9 or a reboot. A pid alone could name whatever process got
that number since (pid reuse): before signalling one we check its start time (field 22 of
/proc/<pid>/stat) and the boot id against what was recorded at spawn.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from executor.backends.base import MAX_LOG_EXCERPT

IDENTITY = "identity"
LOCK = "lock"
PROC = "proc"  # "<pid> <start time in clock ticks> <boot id>", written by the service at spawn
BOOT_ID = "/proc/sys/kernel/random/boot_id"


class ForeignWorkDir(Exception):
    """The work dir of this task's name was claimed for another event."""


@dataclass(frozen=True)
class ProcessId:
    """A process as it was at spawn: a pid is reused, (pid, start time, boot) is not."""

    pid: int
    start_time: str
    boot_id: str

    def text(self) -> str:
        return f"{self.pid} {self.start_time} {self.boot_id}"


def claim(work: str) -> None:
    """Create the work dir (and the root above it): FileExistsError if someone already has."""
    try:
        os.mkdir(work, 0o700)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(work), mode=0o711, exist_ok=True)
        os.mkdir(work, 0o700)


def write_identity(work: str, source: str, event_id: str) -> None:
    _write_atomic(f"{work}/{IDENTITY}", json.dumps({"source": source, "id": event_id}))


def check_identity(work: str, source: str, event_id: str) -> bool:
    """Whether the dir is this event's; False when it has no identity yet (claimed, then a crash
    before the identity was written: only a submit of this same name could have claimed it).
    Raises ForeignWorkDir when it names another event."""
    try:
        found = json.loads(read_bytes(f"{work}/{IDENTITY}") or b"{}")
    except FileNotFoundError:
        return False
    except ValueError:
        found = {}
    theirs = (str(found.get("source", "")), str(found.get("id", "")))
    if theirs != (source, event_id):
        raise ForeignWorkDir(
            f"work dir {work} belongs to another event (source {theirs[0]!r}, id {theirs[1]!r}; "
            f"this task's event is source {source!r}, id {event_id!r}); refusing to adopt it. "
            "Move the dir away if it is stale."
        )
    return True


def hold_lock(work: str) -> int:
    """Open and lock `<work>/lock`; the caller hands the descriptor to the task's process."""
    fd = os.open(f"{work}/{LOCK}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def running(work: str) -> bool:
    """True while some process holds the task's lock: the wrapper or the task it started."""
    try:
        fd = os.open(f"{work}/{LOCK}", _READ)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return False  # the task put a symlink in its place: it has broken its own record
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def spawned(work: str) -> bool:
    """Whether a process was ever started for this task (the wrapper wrote its pid, or we did)."""
    return os.path.exists(f"{work}/pid") or os.path.exists(f"{work}/{PROC}")


def identify(pid: int) -> ProcessId | None:
    start = _start_time(pid)
    return None if start is None else ProcessId(pid, start, boot_id())


def record_process(work: str, process: ProcessId) -> None:
    _write_atomic(f"{work}/{PROC}", process.text())


def recorded_process(work: str) -> ProcessId | None:
    """The task's process, if it is still the very one we started (same start time and boot)."""
    try:
        pid_text, start, boot = read_bytes(f"{work}/{PROC}").decode().split()
    except (FileNotFoundError, ValueError):
        return None
    pid = int(pid_text)
    if _start_time(pid) != start or boot_id() != boot:
        return None  # it ended; the pid now names another process, or the machine rebooted
    return ProcessId(pid, start, boot)


@functools.cache
def boot_id() -> str:
    """This boot's id: read once, as it cannot change while the process runs."""
    try:
        return read_bytes(BOOT_ID).decode().strip()
    except OSError:
        return "-"


def _start_time(pid: int) -> str | None:
    try:
        stat = read_bytes(f"/proc/{pid}/stat").decode("utf-8", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None  # a zombie has ended
    return fields[19]  # field 22 of the whole line: start time since boot, in clock ticks


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    write(tmp, text)
    os.rename(tmp, path)


def close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


# ---- the files of a work dir ----


# The few small files of a work dir are read and written with plain descriptors: a task touches
# eight or so, and Python's file objects (a buffer, an fstat, a close through two layers) took
# twice the time of the system calls themselves on a tmpfs (bench/local_spawn.py).
#
# The work dir belongs to the task's user, who may put anything in place of a file the service
# reads or writes there, and the service may be root. So a symlink is never followed (a task
# must not have root read /etc/shadow into its log, or write into /etc/passwd), a FIFO never
# blocks the event loop, and what is read of anything else is bounded.
_READ = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
_WRITE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
SMALL_FILE = 1 << 16  # the most read of a work dir's record files (pid, exit, identity, ...)


def read_bytes(path: str, limit: int = SMALL_FILE) -> bytes:
    """Up to `limit` bytes of a regular file; b"" for a symlink, a FIFO or a device in its place.
    FileNotFoundError (and other OSErrors) as open() raises them."""
    try:
        fd = os.open(path, _READ)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return b""
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return b""
        return _read_fd(fd, limit, info.st_size)
    finally:
        os.close(fd)


def _read_fd(fd: int, limit: int, size: int = 0) -> bytes:
    """Up to `limit` bytes to the end; `size` (the file's, as fstat said; /proc's files say 0)
    spares the read that finds the end of a file read whole at once."""
    if 0 < size <= limit:
        data = os.read(fd, size)
        if len(data) == size:
            return data
        limit -= len(data)
        chunks = [data]
    else:
        chunks = []
    while limit > 0:
        chunk = os.read(fd, min(limit, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        limit -= len(chunk)
    return b"".join(chunks)


def read_result(work: str, limit: int) -> bytes | None:
    """The task's result file (`<work>/keptn/result.json`), up to `limit` bytes; None when there
    is none, or something else than a regular file is there (a symlink at either step)."""
    try:
        folder = os.open(f"{work}/keptn", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fd = os.open("result.json", _READ, dir_fd=folder)
    except OSError:
        return None
    finally:
        os.close(folder)
    try:
        info = os.fstat(fd)
        return _read_fd(fd, limit, info.st_size) if stat.S_ISREG(info.st_mode) else None
    finally:
        os.close(fd)


def write(path: str, text: str) -> None:
    """Create or truncate `path` with `text` (0666 less the umask, as open() makes it); OSError
    (ELOOP) rather than writing through a symlink."""
    fd = os.open(path, _WRITE, 0o666)
    try:
        data = memoryview(text.encode())
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


def read_tail(path: str, limit: int = 4 * MAX_LOG_EXCERPT) -> str:
    """The end of a task's output: a task may write gigabytes, the report quotes the end."""
    return read_from(path, -limit, limit).decode("utf-8", "replace")


def read_from(path: str, offset: int, limit: int) -> bytes:
    """Up to `limit` bytes from `offset` (from the end when negative); b"" when there is no such
    regular file."""
    try:
        fd = os.open(path, _READ)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            return b""
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return b""
        start = max(0, info.st_size + offset) if offset < 0 else offset
        os.lseek(fd, start, os.SEEK_SET)
        return _read_fd(fd, limit, max(0, info.st_size - start))
    finally:
        os.close(fd)


LIVE_LOG_BYTES = 1 << 20  # what one read API request takes of a running task's output


def output_so_far(root: Path, job: str) -> str | None:
    if not job or "/" in job or job.startswith("."):
        return None  # a task name, never a path
    try:
        return read_bytes(f"{root}/{job}/output.log", LIVE_LOG_BYTES).decode("utf-8", "replace")
    except OSError:
        return None


def ended(work: str) -> bool:
    return os.path.exists(f"{work}/exit") or os.path.exists(f"{work}/failure")


def remove_ended(works: Sequence[str]) -> None:
    for work in works:
        if os.path.exists(f"{work}/exit") or os.path.exists(f"{work}/failure"):
            shutil.rmtree(work, ignore_errors=True)


def write_failure(work: str, message: str) -> None:
    tmp = f"{work}/failure.tmp"
    write(tmp, message)
    os.rename(tmp, f"{work}/failure")


def read(path: str | Path) -> str:
    try:
        return read_bytes(str(path)).decode("utf-8", "replace").strip()
    except (FileNotFoundError, NotADirectoryError):
        return ""
