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
import os
import re
import signal
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from executor.backends.base import MAX_LOG_EXCERPT, Adopted, TaskHandle, TaskOutcome, tail
from executor.naming import spec_job_name
from executor.paths import STAGING_ROOT
from executor.taskspec import RESULT_FILE_ENV, TaskSpec

MAX_RESULT_BYTES = 64 * 1024
POLL_SECONDS = 0.2
KILL_GRACE_SECONDS = 2.0

# $1 is the work dir. The pid file is written before the command starts and the exit file
# after it ends, each by one small write (readers take an empty file for "not yet"); only
# shell builtins, so the wrapper adds no process beyond the task's own.
WRAPPER = 'd="$1"; shift; echo $$ > "$d/pid"; "$@" >> "$d/output.log" 2>&1; echo $? > "$d/exit"'
_VAR = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


class LocalBackend:
    name = "local"

    def __init__(
        self,
        work_root: Path,
        secrets_dir: Path | None = None,
        output: IO[str] | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.work_root = work_root
        self.secrets_dir = secrets_dir
        self.output = output  # when set, task output is streamed here as it is written
        self.poll_seconds = poll_seconds
        self._children: dict[str, asyncio.subprocess.Process] = {}

    async def start(self) -> None:
        self.work_root.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        # Tasks keep running: they are adopted on the next start. Only forget our handles.
        self._children.clear()

    def work_dir(self, name: str) -> Path:
        return self.work_root / name

    async def submit(self, spec: TaskSpec, files: Mapping[str, bytes]) -> TaskHandle:
        name = spec_job_name(spec)
        work = self.work_dir(name)
        try:
            work.mkdir(parents=True)
        except FileExistsError:
            return TaskHandle(name, adopted=True)
        staging = work / "keptn"
        staging.mkdir()
        for relative, data in files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (work / "started").write_text(_now())
        try:
            argv, env, cwd = self._command(spec, work)
        except ValueError as exc:
            _write_failure(work, str(exc))
            return TaskHandle(name)
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                WRAPPER,
                "sh",
                str(work),
                *argv,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            _write_failure(work, f"cannot start: {exc.strerror} ({cwd})")
            return TaskHandle(name)
        self._children[name] = proc
        return TaskHandle(name)

    def _command(self, spec: TaskSpec, work: Path) -> tuple[list[str], dict[str, str], str]:
        if not spec.cmd:
            raise ValueError(
                f"task '{spec.task_name}' has no cmd; the local backend runs commands, "
                "not an image's entrypoint"
            )
        staging = str(work / "keptn")
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(work),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        for var in spec.env:
            env[var.name] = _rebase(var.value, staging)
        for secret in spec.secret_refs:
            env.update(self._secret(secret))
        env[RESULT_FILE_ENV] = f"{staging}/result.json"
        argv = [_rebase(_expand(arg, env), staging) for arg in (*spec.cmd, *spec.args)]
        cwd = _rebase(spec.working_dir, staging) if spec.working_dir else staging
        if not Path(cwd).is_dir():
            raise ValueError(f"working directory {spec.working_dir} does not exist on this machine")
        return argv, env, cwd

    def _secret(self, name: str) -> dict[str, str]:
        """A secret is a folder of files, one per key (the layout of a mounted Kubernetes secret)."""
        folder = self.secrets_dir / name if self.secrets_dir else None
        if folder is None or not folder.is_dir():
            where = self.secrets_dir or "LOCAL_SECRETS_DIR (not set)"
            raise ValueError(f"secret '{name}' not found in {where}")
        return {p.name: p.read_text().rstrip("\n") for p in sorted(folder.iterdir()) if p.is_file()}

    async def wait(self, handle: TaskHandle, spec: TaskSpec) -> TaskOutcome:
        work = self.work_dir(handle.name)
        limit = spec.max_poll_duration
        if spec.active_deadline_seconds:
            limit = min(limit, spec.active_deadline_seconds)
        started = _read(work / "started") or _now()
        deadline = time.monotonic() + max(0.0, limit - _age(started))
        streamer = asyncio.create_task(self._stream(work)) if self.output else None
        try:
            while True:
                outcome = self._finished(work, started)
                if outcome is not None:
                    return outcome
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    await self._kill(work)
                    return self._outcome(
                        work, started, "timed_out", f"timed out after {limit} s (maxPollDuration)"
                    )
                child = self._children.get(handle.name)
                if child is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(child.wait(), timeout=remaining)
                    if child.returncode is not None:
                        self._children.pop(handle.name, None)
                        if self._finished(work, started) is None:
                            return self._outcome(
                                work,
                                started,
                                "lost",
                                "the task's wrapper ended without an exit code",
                            )
                elif not _alive(_read(work / "pid")):
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
                streamer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await streamer
                self._flush_output(work)

    def _finished(self, work: Path, started: str) -> TaskOutcome | None:
        failure = _read(work / "failure")
        if failure:
            return self._outcome(work, started, "failed", failure)
        code_text = _read(work / "exit")
        if not code_text:
            return None
        code = int(code_text)
        if code == 0:
            return self._outcome(work, started, "succeeded", "", code)
        return self._outcome(work, started, "failed", f"exit code {code}", code)

    def _outcome(
        self, work: Path, started: str, status: str, reason: str, code: int | None = None
    ) -> TaskOutcome:
        logs = _read_tail(work / "output.log")
        result_path = work / "keptn" / "result.json"
        result = None
        if result_path.is_file():
            with result_path.open("rb") as handle:
                result = handle.read(MAX_RESULT_BYTES + 1)
        return TaskOutcome(
            status=status,  # type: ignore[arg-type]
            reason=reason,
            logs=tail(logs),
            result=result,
            exit_code=code,
            started_at=started,
            finished_at=_finished_at(work),
        )

    async def _kill(self, work: Path) -> None:
        pid = _read(work / "pid")
        if not pid or not _alive(pid):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid), signal.SIGTERM)
        for _ in range(int(KILL_GRACE_SECONDS / 0.05)):
            if not _alive(pid):
                return
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid), signal.SIGKILL)

    async def cancel(self, handle: TaskHandle) -> None:
        await self._kill(self.work_dir(handle.name))

    async def adopt(self) -> list[Adopted]:
        if not self.work_root.is_dir():
            return []
        return [
            Adopted(TaskHandle(path.name, adopted=True))
            for path in sorted(self.work_root.iterdir())
            if path.is_dir() and not (path / "exit").exists() and _alive(_read(path / "pid"))
        ]

    async def _stream(self, work: Path) -> None:
        while True:
            self._flush_output(work)
            await asyncio.sleep(0.1)

    def _flush_output(self, work: Path) -> None:
        assert self.output is not None
        path = work / "output.log"
        offset_file = work / "streamed"
        offset = int(_read(offset_file) or 0)
        if not path.exists() or path.stat().st_size <= offset:
            return
        with path.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
        self.output.write(chunk.decode("utf-8", "replace"))
        self.output.flush()
        offset_file.write_text(str(offset + len(chunk)))


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, $$ is a literal $."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR.sub(replace, text)


_STAGING_WORD = re.compile(r"(?<![\w./-])" + re.escape(STAGING_ROOT) + r"(?![\w.-])")


def _rebase(text: str, staging: str) -> str:
    """`/keptn` as a path of its own (`/keptn/a`, `--f=/keptn/a`, `cat /keptn/a`) -> the work dir."""
    return _STAGING_WORD.sub(lambda _m: staging, text)


def _read_tail(path: Path, limit: int = 4 * MAX_LOG_EXCERPT) -> str:
    """The end of a task's output: a task may write gigabytes, the report quotes the end."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            return handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _write_failure(work: Path, message: str) -> None:
    tmp = work / "failure.tmp"
    tmp.write_text(message)
    tmp.rename(work / "failure")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return ""


def _alive(pid: str) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); it has ended.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _age(iso: str) -> float:
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(UTC) - then).total_seconds())


def _finished_at(work: Path) -> str:
    """When the task ended: the exit file's time (it is written as the task ends), so the same
    answer comes back after a restart; now, for a task that ended without one."""
    try:
        stamp = (work / "exit").stat().st_mtime
    except FileNotFoundError:
        return _now()
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


if sys.platform == "win32":  # pragma: no cover
    raise ImportError("the local backend needs a POSIX system")
