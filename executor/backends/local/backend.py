"""The local backend: each task a subprocess in a fresh work dir, no cluster needed.

The task's command runs on this machine (the image is not used, but the allow-list is still
checked). `/keptn` in the command, args, env and working dir points at `<work dir>/keptn`, where
the staged files are. The process runs in its own session under a tiny `sh` wrapper that
records its pid and exit code in the work dir, so a task outlives a crash of the service and
is re-adopted on restart; the work dir is created with mkdir, which is the claim that makes a
second submit of the same task an adoption instead of a second run.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from executor.backends.base import BackendError, tail
from executor.backends.local import children, context, isolation, workdir
from executor.backends.naming import spec_job_name
from executor.model.errors import Temporary
from executor.model.tasks import RESULT_FILE_ENV, Adopted, TaskHandle, TaskOutcome, TaskSpec
from executor.support.background import stop_task
from executor.support.crashpoints import crash_point

log = logging.getLogger(__name__)

MAX_RESULT_BYTES = 64 * 1024
POLL_SECONDS = 0.2
KILL_GRACE_SECONDS = 2.0
STREAM_CHUNK = 1 << 20  # the most of a task's output streamed per flush (`run`)

# $1 is the work dir. The pid file is written before the command starts and the exit file
# after it ends, each by one small write (readers take an empty file for "not yet"); only
# shell builtins, so the wrapper adds no process beyond the task's own.
WRAPPER = 'd="$1"; shift; echo $$ > "$d/pid"; "$@" >> "$d/output.log" 2>&1; echo $? > "$d/exit"'
_SHELL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Starting a process failed for want of descriptors (EMFILE, ENFILE) or processes (EAGAIN).
TRANSIENT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.EAGAIN})
_VAR = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


class LocalUnavailable(BackendError, Temporary):
    """The machine is short of descriptors or processes for now: the event is tried again."""


class LocalBackend:
    name = "local"

    def __init__(
        self,
        work_root: Path,
        secrets_dir: Path | None = None,
        output: IO[str] | None = None,
        poll_seconds: float = POLL_SECONDS,
        run_as: children.RunAs | None = None,
    ) -> None:
        self.work_root = work_root
        self.run_as = run_as  # another user for the tasks (when the service runs as root)
        self.secrets_dir = secrets_dir
        self.output = output  # when set, task output is streamed here as it is written
        self.poll_seconds = poll_seconds
        self._blocked = ""  # why tasks cannot run (the work root out of the tasks' user's reach)
        # Tasks this process started: the child, and when (so wait() need not read it back).
        self._children: dict[str, tuple[children.Child, str]] = {}

    async def start(self) -> None:
        self.work_root.mkdir(parents=True, exist_ok=True)
        if self.run_as is not None:
            # Tasks may enter their own work dir (they know its name) but list no other.
            os.chmod(self.work_root, 0o711)
            self._blocked = self._why_blocked(self.run_as)
            if self._blocked:
                log.error("local tasks cannot run: %s", self._blocked)

    def _why_blocked(self, run_as: children.RunAs) -> str:
        """Why the tasks' user cannot reach the work root, or "". Checked at start and, while it
        holds, at each task: it is fixed by a chmod, not a restart."""
        folder = isolation.unreachable(self.work_root, run_as)
        if not folder:
            return ""
        return (
            f"the tasks' user (uid {run_as.uid}) cannot pass through {folder} to reach the work "
            f"dirs in {self.work_root}: run `chmod o+x {folder}`, set STATE_DIR to a folder it can "
            "reach, or set LOCAL_RUN_AS_USER empty to run tasks as root"
        )

    async def live_log(self, job: str) -> str | None:
        return workdir.output_so_far(self.work_root, job)

    async def close(self) -> None:
        # Tasks keep running: they are adopted on the next start. Only forget our handles.
        self._children.clear()

    def _work(self, name: str) -> str:
        # Work dir paths are plain strings: a task touches a dozen files, and pathlib's joins
        # were a tenth of the backend's cost per task (profiled, bench/local_spawn.py).
        return f"{self.work_root}/{name}"

    async def submit(self, spec: TaskSpec, files: Mapping[str, bytes]) -> TaskHandle:
        name = spec_job_name(spec)
        work = self._work(name)
        source, event_id = spec.trigger.event_source, spec.trigger.event_id
        try:
            try:
                workdir.claim(work)
            except FileExistsError:
                if not self._unstarted_claim(work, source, event_id):
                    return TaskHandle(name, adopted=True)
                log.warning("task %s was claimed but never started (a stop in between): starting it", name)
            workdir.write_identity(work, source, event_id)
            crash_point("local.claimed")
            return await self._start(spec, files, name, work)
        except OSError as exc:
            if exc.errno in TRANSIENT_ERRNOS:
                # Out of descriptors or processes: it passes. The claim stays and the next
                # submit (the dispatcher's retry) finds it unstarted and starts it.
                raise LocalUnavailable(f"cannot start task {name} now: {exc}") from None
            raise

    def _unstarted_claim(self, work: str, source: str, event_id: str) -> bool:
        """True when the work dir is this event's and nothing was ever started in it."""
        try:
            workdir.check_identity(work, source, event_id)
        except workdir.ForeignWorkDir as exc:
            raise BackendError(str(exc)) from None
        if workdir.ended(work) or workdir.running(work) or workdir.spawned(work):
            return False
        shutil.rmtree(f"{work}/keptn", ignore_errors=True)  # half-staged before the stop
        return True

    async def _start(self, spec: TaskSpec, files: Mapping[str, bytes], name: str, work: str) -> TaskHandle:
        try:
            lock = workdir.hold_lock(work)
        except BlockingIOError:
            return TaskHandle(name, adopted=True)  # someone is starting it right now
        try:
            staging = f"{work}/keptn"
            os.mkdir(staging)
            for relative, data in files.items():
                target = Path(staging) / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            context.write_event(spec, work)
            started = _now()
            workdir.write(f"{work}/started", started)
            try:
                argv, env, cwd = self._command(spec, work)
                context.copy_secret_files(spec, work, self.secrets_dir)
            except ValueError as exc:
                workdir.write_failure(work, str(exc))
                return TaskHandle(name)
            if self.run_as is not None:
                if self._blocked:
                    self._blocked = self._why_blocked(self.run_as)
                if self._blocked:
                    workdir.write_failure(work, f"cannot start: {self._blocked}")
                    return TaskHandle(name)
                isolation.hand_over(work, self.run_as)
            try:
                proc = await children.start(
                    ("/bin/sh", "-c", WRAPPER, "sh", work, *argv),
                    cwd=cwd,
                    env=env,
                    pass_fds=(lock,),
                    run_as=self.run_as,
                )
            except OSError as exc:
                if exc.errno in TRANSIENT_ERRNOS:
                    raise
                workdir.write_failure(work, f"cannot start: {exc.strerror} ({cwd})")
                return TaskHandle(name)
            identity = workdir.identify(proc.pid)
            if identity is not None:
                workdir.record_process(work, identity)
            crash_point("local.spawned")
        finally:
            workdir.close_quietly(lock)
        self._children[name] = (proc, started)
        return TaskHandle(name)

    def _command(self, spec: TaskSpec, work: str) -> tuple[list[str], dict[str, str], str]:
        if not spec.cmd:
            raise ValueError(
                f"task '{spec.task_name}' has no cmd; the local backend runs commands, "
                "not an image's entrypoint"
            )
        staging = f"{work}/keptn"
        folders = context.Folders(spec, work)
        base = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": work,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        env = context.environment(spec, base, self.secrets_dir, folders)
        env[RESULT_FILE_ENV] = f"{staging}/result.json"
        for key, value in env.items():
            context.check_env_size(key, value)
        argv = [folders.rebase(_expand(arg, env)) for arg in (*spec.cmd, *spec.args)]
        # The wrapper is /bin/sh, and dash drops variables whose names are no shell identifier
        # (`E2E-x`, valid in Kubernetes and passed by JES); env(1) sets them after the shell.
        odd = [f"{k}={v}" for k, v in env.items() if not _SHELL_NAME.match(k)]
        if odd:
            argv = ["env", *odd, *argv]
        cwd = folders.rebase(spec.working_dir) if spec.working_dir else staging
        if cwd != staging and not os.path.isdir(cwd):  # the staging folder was just made
            raise ValueError(f"working directory {spec.working_dir} does not exist on this machine")
        return argv, env, cwd

    async def wait(self, handle: TaskHandle, spec: TaskSpec) -> TaskOutcome:
        outcome = await self._wait(handle, spec)
        if spec.secret_files:
            context.remove_secret_files(self._work(handle.name))
        # The values of the secrets the task received never leave in its report or history.
        return isolation.masked(outcome, context.secret_values(spec, self.secrets_dir))

    async def _wait(self, handle: TaskHandle, spec: TaskSpec) -> TaskOutcome:
        work = self._work(handle.name)
        limit = spec.max_poll_duration
        if spec.active_deadline_seconds:
            limit = min(limit, spec.active_deadline_seconds)
        own = self._children.get(handle.name)
        started = own[1] if own else workdir.read(f"{work}/started") or _now()
        deadline = time.monotonic() + max(0.0, limit - _age(started))
        streamer = asyncio.create_task(self._stream(work)) if self.output else None
        try:
            while True:
                entry = self._children.get(handle.name)
                child = entry[0] if entry else None
                # Our own running child says when it ends: its files are read once, then.
                if child is None:
                    outcome = self._finished(work, started)
                    if outcome is not None:
                        return outcome
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    await self._kill(work)
                    return self._outcome(
                        work, started, "timed_out", f"timed out after {limit} s (maxPollDuration)"
                    )
                if child is not None:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(remaining):
                            await child.wait()
                    if child.returncode is not None:
                        self._children.pop(handle.name, None)
                        # A failure file is only written when no child could be started.
                        outcome = self._finished(work, started, check_failure=False)
                        if outcome is not None:
                            return outcome
                        return self._outcome(
                            work,
                            started,
                            "lost",
                            "the task's wrapper ended without an exit code",
                        )
                elif not workdir.running(work):
                    # Not our child (adopted after a restart) and gone: give the exit file a
                    # last chance, since it is written just before the wrapper exits.
                    await asyncio.sleep(self.poll_seconds)
                    final = self._finished(work, started)
                    if final is not None:
                        return final
                    return self._outcome(
                        work,
                        started,
                        "lost",
                        "the task ended while job-executor was down; its exit code was lost",
                    )
                else:
                    await asyncio.sleep(self.poll_seconds)
        finally:
            if streamer is not None:
                await stop_task(streamer)
                self._flush_output(work)

    def _finished(self, work: str, started: str, check_failure: bool = True) -> TaskOutcome | None:
        failure = workdir.read(f"{work}/failure") if check_failure else ""
        if failure:
            return self._outcome(work, started, "failed", failure)
        code_text = workdir.read(f"{work}/exit")
        if not code_text:
            return None
        code = int(code_text)
        if code == 0:
            return self._outcome(work, started, "succeeded", "", code)
        return self._outcome(work, started, "failed", f"exit code {code}", code)

    def _outcome(
        self, work: str, started: str, status: str, reason: str, code: int | None = None
    ) -> TaskOutcome:
        logs = workdir.read_tail(f"{work}/output.log")
        result = workdir.read_result(work, MAX_RESULT_BYTES + 1)
        return TaskOutcome(
            status=status,  # type: ignore[arg-type]
            reason=reason,
            logs=tail(logs),
            result=result,
            exit_code=code,
            started_at=started,
            finished_at=_finished_at(work),
        )

    async def _kill(self, work: str) -> None:
        own = self._children.get(os.path.basename(work))
        if own is not None and own[0].returncode is None:
            pid: int | None = own[0].pid  # our own child: no record to trust
        else:
            pid = _task_pid(work, self.run_as)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        for _ in range(int(KILL_GRACE_SECONDS / 0.05)):
            if not workdir.running(work):
                return
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)

    async def cancel(self, handle: TaskHandle) -> None:
        await self._kill(self._work(handle.name))

    async def adopt(self) -> list[Adopted]:
        if not self.work_root.is_dir():
            return []
        return [
            Adopted(TaskHandle(path.name, adopted=True))
            for path in sorted(self.work_root.iterdir())
            if path.is_dir() and not (path / "exit").exists() and workdir.running(str(path))
        ]

    async def discard(self, names: Sequence[str]) -> None:
        """Remove the work dirs of these tasks once they have ended (a running one is kept)."""
        works = [self._work(n) for n in names if n and "/" not in n and not n.startswith(".")]
        if works:
            await asyncio.to_thread(workdir.remove_ended, works)

    async def _stream(self, work: str) -> None:
        while True:
            self._flush_output(work)
            await asyncio.sleep(0.1)

    def _flush_output(self, work: str) -> None:
        assert self.output is not None
        offset_text = workdir.read(f"{work}/streamed")
        offset = int(offset_text) if offset_text.isdigit() else 0
        chunk = workdir.read_from(f"{work}/output.log", offset, STREAM_CHUNK)
        if not chunk:
            return
        self.output.write(chunk.decode("utf-8", "replace"))
        self.output.flush()
        # Not through a symlink the task put there (workdir.write): then it streams again.
        with contextlib.suppress(OSError):
            workdir.write(f"{work}/streamed", str(offset + len(chunk)))


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, $$ is a literal $."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR.sub(replace, text)


def _task_pid(work: str, run_as: children.RunAs | None = None) -> int | None:
    """The pid to signal, only while it is still the process we started (not a reused pid)."""
    if not workdir.running(work):
        return None  # nothing of the task holds its lock: it has ended, whatever has its pid now
    recorded = workdir.recorded_process(work)
    if recorded is not None:
        pid: int | None = recorded.pid
    elif os.path.lexists(f"{work}/{workdir.PROC}"):
        return None  # recorded, but that process is gone: the pid is someone else's now
    else:
        # A stop between spawn and the record: the wrapper's own pid file, while its lock is held.
        text = workdir.read(f"{work}/pid")
        pid = int(text) if text.isdigit() else None
    if pid is not None and run_as is not None and not _owned_by(pid, run_as.uid):
        # Both records are in a folder the task's user owns, who can forge them: root signals
        # nothing but that user's processes (not pid 1, not the service).
        log.warning("task %s names process %d, not its user's: not signalled", os.path.basename(work), pid)
        return None
    return pid


def _owned_by(pid: int, uid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}").st_uid == uid
    except OSError:
        return False


def _now() -> str:
    # Milliseconds: a start rounded down to the second made maxPollDuration fire up to 1 s early.
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _age(iso: str) -> float:
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(UTC) - then).total_seconds())


def _finished_at(work: str) -> str:
    """When the task ended: the exit file's time (it is written as the task ends), so the same
    answer comes back after a restart; now, for a task that ended without one."""
    try:
        stamp = os.stat(f"{work}/exit").st_mtime
    except FileNotFoundError:
        return _now()
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


if sys.platform == "win32":  # pragma: no cover
    raise ImportError("the local backend needs a POSIX system")
