"""Local backend: tasks/s for a trivial command, against raw subprocess spawns in the same run.

Both sides run `true` the same number of times with the same concurrency; the backend also
stages a work dir, runs the crash-safe wrapper and records the outcome, which is its overhead.

A task's work dir costs a few file creations (the dir, the pid, exit and output files), so the
figure also depends on the file system holding it. The backend runs twice, with its work dirs
in memory (tmpfs, when the machine has /dev/shm: the backend's own cost, which the goal is
about) and on disk (the temporary directory), and the disk's latency for a mkdir and a file
creation is measured in the same run, so a slow or erratic disk shows as what it is.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from executor.backends.local import children
from executor.backends.local.backend import LocalBackend
from executor.model.tasks import TaskSpec, Trigger

CONCURRENCY = 8
EVENT = json.dumps(
    {"specversion": "1.0", "type": "sh.keptn.event.bench.triggered", "data": {"x": "y" * 1024}}
)


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
        # Every task is given its event as a file (issue 15): about a Keptn event's size.
        event_file=EVENT,
    )


def kube_spec(i: int) -> TaskSpec:
    """spec(i) as the planner gives it to the Kubernetes backend: an event under
    planner.MAX_EVENT_ANNOTATION (32 KiB) rides on the Job as an annotation and the pod reads it
    from there, so a Job without files needs no ConfigMap (and no two requests more)."""
    base = spec(i)
    return replace(base, trigger=replace(base.trigger, event_json=base.event_file), max_poll_duration=600)


async def raw(count: int, same_way: bool = False) -> float:
    """Spawns of `true` the plain asyncio way (the goal's baseline) or, with `same_way`, the
    way the backend starts and watches its processes (its overhead beyond spawning)."""
    gate = asyncio.Semaphore(CONCURRENCY)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

    async def one() -> None:
        async with gate:
            if same_way:
                child = await children.start(["true"], cwd="/", env=env)
                await child.wait()
            else:
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


def _in_memory() -> Path | None:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


def _disk_latency(where: Path, count: int = 200) -> dict[str, float]:
    """Microseconds for a mkdir and for creating a small file, where the work dirs go."""
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        began = time.perf_counter()
        for i in range(count):
            os.mkdir(f"{tmp}/{i}")
        made = time.perf_counter()
        for i in range(count):
            with open(f"{tmp}/{i}/f", "wb") as handle:
                handle.write(b"1")
        written = time.perf_counter()
    return {
        "mkdir_us": round((made - began) / count * 1e6, 1),
        "create_us": round((written - made) / count * 1e6, 1),
    }


def _compare(count: int, where: Path | None, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        # alternate, so drift on a shared machine hits both sides alike
        raw_rates, same_rates, backend_rates = [], [], []
        for round_ in range(rounds):
            raw_rates.append(asyncio.run(raw(count // rounds)))
            backend_rates.append(asyncio.run(backend(count // rounds, Path(tmp) / f"r{round_}")))
            same_rates.append(asyncio.run(raw(count // rounds, same_way=True)))
        latency = _disk_latency(Path(tmp))
    # Each round's ratio is measured side by side; their median is the figure, so one round
    # that a neighbour's burst slowed does not decide it.
    ratios = sorted(b / r for r, b in zip(raw_rates, backend_rates, strict=True))
    same = [b / r for r, b in zip(same_rates, backend_rates, strict=True)]
    return {
        "work_dirs": tempfile.gettempdir() if where is None else str(where),
        "tasks": count,
        "raw_spawns_per_second": round(statistics.median(raw_rates), 1),
        "backend_tasks_per_second": round(statistics.median(backend_rates), 1),
        "ratio_to_raw": round(statistics.median(ratios), 3),
        "ratio_range": [round(ratios[0], 3), round(ratios[-1], 3)],
        "same_way_spawns_per_second": round(statistics.median(same_rates), 1),
        "ratio_to_same_way": round(statistics.median(same), 3),
        **latency,
    }


GOAL_RATIO = 0.8


def run(count: int = 400, rounds: int = 4) -> dict[str, Any]:
    memory = _in_memory()
    disk = _compare(count, None, rounds)
    in_memory = _compare(count, memory, rounds) if memory is not None else disk
    ratio = in_memory["ratio_to_raw"]
    low, high = in_memory["ratio_range"]
    return {
        # The goal's figure: the backend's own cost (on disk when there is no tmpfs).
        "ratio_to_raw": ratio,
        "in_memory": in_memory,
        "on_disk": disk,
        "goals": [
            {
                "name": "local backend",
                "figure": f"{ratio:.2f} of raw spawns, work dirs in {in_memory['work_dirs']} (rounds "
                f"{low:.2f}-{high:.2f}; {in_memory['backend_tasks_per_second']:,} tasks/s)",
                "goal": f">= {GOAL_RATIO} of raw spawns with work dirs in memory",
                "met": ratio >= GOAL_RATIO,
            }
        ],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
