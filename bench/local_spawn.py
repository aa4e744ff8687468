"""Local backend: tasks/s for a trivial command, against raw subprocess spawns in the same run.

Both sides run `true` the same number of times with the same concurrency; the backend also
stages a work dir, runs the crash-safe wrapper and records the outcome, which is its overhead.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from executor.backends.local import LocalBackend
from executor.taskspec import TaskSpec, Trigger

CONCURRENCY = 8


def spec(i: int) -> TaskSpec:
    trigger = Trigger(f"bench-{i}", "bench", "sh.keptn.event.bench.triggered", "ctx", "p", "s", "v", "")
    return TaskSpec(
        trigger=trigger,
        action_name="a",
        action_index=0,
        task_name="t",
        task_index=1,
        config_digest="d",
        image="alpine",
        cmd=("true",),
        args=(),
        env=(),
        secret_refs=(),
        files=(),
        working_dir=None,
        limits={},
        requests={},
        init_limits={},
        init_requests={},
        max_poll_duration=60,
        ttl_seconds_after_finished=60,
        active_deadline_seconds=None,
        namespace="bench",
        annotations={},
        security_context={},
        image_pull_policy=None,
        service_account=None,
        automount_service_account_token=False,
    )


async def raw(count: int) -> float:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with gate:
            proc = await asyncio.create_subprocess_exec("true")
            await proc.wait()

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.perf_counter() - began)


async def backend(count: int, root: Path) -> float:
    local = LocalBackend(root, poll_seconds=0.01)
    await local.start()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with gate:
            task = spec(i)
            handle = await local.submit(task, {})
            outcome = await local.wait(handle, task)
            assert outcome.ok, outcome

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return count / (time.perf_counter() - began)


def run(count: int = 400) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        # alternate, so drift on a shared machine hits both sides alike
        raw_rates, backend_rates = [], []
        for round_ in range(2):
            raw_rates.append(asyncio.run(raw(count // 2)))
            backend_rates.append(asyncio.run(backend(count // 2, Path(tmp) / f"r{round_}")))
    raw_rate = sum(raw_rates) / len(raw_rates)
    backend_rate = sum(backend_rates) / len(backend_rates)
    return {
        "tasks": count,
        "raw_spawns_per_second": round(raw_rate, 1),
        "backend_tasks_per_second": round(backend_rate, 1),
        "ratio_to_raw": round(backend_rate / raw_rate, 3),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
