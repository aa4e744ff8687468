"""`job-executor run`: one event through the whole pipeline with the local backend, no server.

Task output streams to stderr; each emitted CloudEvent is one JSON line on stdout.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from executor.backends.local.backend import LocalBackend
from executor.config.model import Task
from executor.matcher import matching_actions
from executor.model.events import Event
from executor.model.problems import ConfigError
from executor.outbox import Outbox
from executor.pipeline import Pipeline
from executor.resolvers.local import FileResolver
from executor.settings import Settings
from executor.sinks.stdout import StdoutSink
from executor.state import StateStore


def ignored_note(task: Task) -> str:
    """What the local backend does not honour of a task: it runs `cmd` on this host."""
    ignored = [f"image {task.image}"]
    if task.service_account:
        ignored.append(f"serviceAccount {task.service_account}")
    if task.security_context:
        ignored.append("securityContext")
    if task.image_pull_policy:
        ignored.append(f"imagePullPolicy {task.image_pull_policy}")
    note = f"note: task '{task.name}' runs its cmd on this host; ignored: {', '.join(ignored)}"
    if task.secret_files:
        # A process here cannot be given /etc/kube itself (FEATURES.md, Secrets as files).
        moved = ", ".join(f"{s.mount_path} is <work dir>/secrets{s.mount_path}" for s in task.secret_files)
        note += f"; secretFiles: {moved}"
    return note


async def run_once(settings: Settings, config: Path, files_root: Path, event: Event) -> int:
    resolver = FileResolver(config, files_root)
    try:
        resolved = await resolver.resolve(event)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    actions = matching_actions(resolved.config, event) if resolved is not None else []
    if resolved is not None and not actions:
        print(
            f"no action in {config} matches event type {event.type!r}; nothing to run",
            file=sys.stderr,
        )
        return 0
    for action in actions:
        for task in action.tasks:
            print(ignored_note(task), file=sys.stderr)
    store = StateStore(":memory:")
    with tempfile.TemporaryDirectory(prefix="job-executor-run-") as work:
        backend = LocalBackend(Path(work), settings.local.secrets_dir, output=sys.stderr, poll_seconds=0.05)
        outbox = Outbox(store, {"stdout": StdoutSink()})
        pipeline = Pipeline(settings, resolver, backend, store, outbox)
        await backend.start()
        ok = await pipeline.handle(event)
        await outbox.deliver_due()
    store.close()
    return 0 if ok else 1
