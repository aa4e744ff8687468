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
import fcntl
import json
import os
import shutil
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
        with open(f"{work}/{IDENTITY}", "rb") as handle:
            found = json.loads(handle.read() or b"{}")
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
        fd = os.open(f"{work}/{LOCK}", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return False
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
        with open(f"{work}/{PROC}", "rb") as handle:
            pid_text, start, boot = handle.read().decode().split()
    except (FileNotFoundError, ValueError):
        return None
    pid = int(pid_text)
    if _start_time(pid) != start or boot_id() != boot:
        return None  # it ended; the pid now names another process, or the machine rebooted
    return ProcessId(pid, start, boot)


def boot_id() -> str:
    try:
        with open(BOOT_ID, "rb") as handle:
            return handle.read().decode().strip()
    except OSError:
        return "-"


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None  # a zombie has ended
    return fields[19]  # field 22 of the whole line: start time since boot, in clock ticks


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(text.encode())
    os.rename(tmp, path)


def close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


# ---- the files of a work dir ----


def read_tail(path: str, limit: int = 4 * MAX_LOG_EXCERPT) -> str:
    """The end of a task's output: a task may write gigabytes, the report quotes the end."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            return handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


LIVE_LOG_BYTES = 1 << 20  # what one read API request takes of a running task's output


def output_so_far(root: Path, job: str) -> str | None:
    if not job or "/" in job or job.startswith("."):
        return None  # a task name, never a path
    try:
        with open(root / job / "output.log", "rb") as handle:
            return handle.read(LIVE_LOG_BYTES).decode("utf-8", "replace")
    except OSError:
        return None


def ended(work: str) -> bool:
    return os.path.exists(f"{work}/exit") or os.path.exists(f"{work}/failure")


def remove_ended(works: Sequence[str]) -> None:
    for work in works:
        if os.path.exists(f"{work}/exit") or os.path.exists(f"{work}/failure"):
            shutil.rmtree(work, ignore_errors=True)


def write(path: str, text: str) -> None:
    with open(path, "wb") as handle:
        handle.write(text.encode())


def write_failure(work: str, message: str) -> None:
    tmp = f"{work}/failure.tmp"
    write(tmp, message)
    os.rename(tmp, f"{work}/failure")


def read(path: str | Path) -> str:
    try:
        with open(path, "rb") as handle:  # bytes: no text layer to build for a few characters
            return handle.read().decode("utf-8", "replace").strip()
    except (FileNotFoundError, NotADirectoryError):
        return ""
