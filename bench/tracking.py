"""Tracking: thousands of Jobs in flight on a loopback Kubernetes API, completing at random
times. The backend's shared watch against the original's way, one GET per job every 5 s.

Each variant runs in its own process (so CPU seconds and peak RSS are its own) against its own
fake API server process (tests/kubeapi, the real REST and watch protocol) that completes each
Job at a random time within the window. Both variants create the same Jobs the same way, then
measure two phases apart:

1. tracking: learning that each Job ended. The backend's wait() (its shared watch) against a
   GET of each Job every 5 s with the same client and the same JSON reading. CPU seconds and
   API requests of this phase are the goal's figures.
2. outcomes: reading each finished Job's pod and log, by the same code (the backend's) on both
   sides. Reported apart, and in a second ratio with the tracking phase, because it is a fixed
   cost (two requests per job) that no way of tracking avoids.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import run as runner
from bench.common import free_port, python, spawn, stop, wait_http

NAMESPACE = "bench"
POLL_SECONDS = 5.0


def _spec(i: int) -> Any:
    from bench.local_spawn import spec

    base = spec(i)
    from dataclasses import replace

    return replace(base, namespace=NAMESPACE, max_poll_duration=600, cmd=("true",))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sys_cpu() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def _requests(api_url: str) -> int:
    with urllib.request.urlopen(api_url + "/_fake/stats", timeout=10) as response:
        return int(json.loads(response.read())["requests"])


async def _run_variant(variant: str, api_url: str, kubeconfig: str, jobs: int) -> dict[str, Any]:
    from kubernetes_asyncio import client, config

    from executor.backends.kubernetes import harvest
    from executor.backends.kubernetes.backend import KubernetesBackend
    from executor.backends.kubernetes.render import RenderOptions

    configuration = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    api_client = client.ApiClient(configuration)
    backend = KubernetesBackend(
        RenderOptions(init_image="job-executor:bench"), namespaces=(NAMESPACE,), api_client=api_client
    )
    await backend.start()
    api = await backend._ready()
    specs = [_spec(i) for i in range(jobs)]
    gate = asyncio.Semaphore(32)

    async def submit(task: Any) -> Any:
        async with gate:
            return await backend.submit(task, {})

    before_requests = _requests(api_url)
    began = time.monotonic()
    handles = await asyncio.gather(*(submit(s) for s in specs))
    if variant == "poll":
        # The baseline learns of the ends by its GETs alone: no shared watch running beside them.
        await backend.tracker(NAMESPACE).close()
    submitted_cpu, submitted_sys, submitted_at = _cpu(), _sys_cpu(), time.monotonic()
    after_create_requests = _requests(api_url)
    if variant == "watch":
        # The backend's own wait(), up to the point where it has the finished Job: the outcome
        # (pod, logs) is read in the second phase, by the same code for both variants.

        async def keep(_api: Any, job: Any) -> Any:
            return job

        read_outcome, harvest.outcome = harvest.outcome, keep
        try:
            ended = await asyncio.gather(*(backend.wait(h, s) for h, s in zip(handles, specs, strict=True)))
        finally:
            harvest.outcome = read_outcome
    else:

        async def poll(handle: Any) -> Any:
            # What the original did: read the Job every 5 s until it has ended. Same client and
            # same reading as the backend's own reads (plain JSON, retried), so the figures
            # compare the ways of learning that a Job ended, not two ways of decoding it.
            while True:
                job = await api.call(
                    f"reading Job {handle.name}", api.batch.read_namespaced_job, handle.name, NAMESPACE
                )
                status = job.get("status") or {}
                if (status.get("succeeded") or 0) + (status.get("failed") or 0) > 0:
                    return job
                await asyncio.sleep(POLL_SECONDS)

        ended = await asyncio.gather(*(poll(h) for h in handles))
    tracked_cpu, tracked_sys, tracked_at = _cpu(), _sys_cpu(), time.monotonic()
    tracking_requests = _requests(api_url) - after_create_requests

    # Second phase, identical for both variants: what a finished task needs (its pod, its log).
    async def outcome(job: Any) -> Any:
        if not isinstance(job, dict):
            return job  # the wait ended otherwise (timed out, lost)
        async with gate:
            return await harvest.outcome(api, job)

    outcomes = await asyncio.gather(*(outcome(job) for job in ended))
    finished_at = time.monotonic()
    total_requests = _requests(api_url) - before_requests
    await backend.close()
    await api_client.close()
    return {
        "jobs": jobs,
        "succeeded": sum(1 for o in outcomes if o.ok),
        "api_requests_per_job": round(total_requests / jobs, 2),
        "tracking_requests_per_job": round(tracking_requests / jobs, 2),
        "cpu_seconds_total": round(_cpu(), 2),
        "cpu_seconds_tracking": round(tracked_cpu - submitted_cpu, 2),
        "cpu_seconds_tracking_system": round(tracked_sys - submitted_sys, 2),
        "cpu_seconds_outcomes": round(_cpu() - tracked_cpu, 2),
        "submit_seconds": round(submitted_at - began, 1),
        "tracking_seconds": round(tracked_at - submitted_at, 1),
        "wall_seconds": round(finished_at - began, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def variant(name: str, jobs: int, window: float) -> dict[str, Any]:
    """Start a fake API server process and a measuring process; return the latter's figures."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        kubeconfig = Path(tmp) / "kubeconfig"
        server = spawn(
            [
                python(),
                "-m",
                "tests.kubeapi.server",
                "--port",
                str(port),
                "--validation",
                "cached",
                "--auto-complete-delay",
                f"0,{window}",
                "--kubeconfig",
                str(kubeconfig),
                "--seed",
                "7",
            ],
            core=0,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/version")
            probe = spawn(
                [
                    python(),
                    "-m",
                    "bench.tracking",
                    "--variant",
                    name,
                    "--api",
                    f"http://127.0.0.1:{port}",
                    "--kubeconfig",
                    str(kubeconfig),
                    "--jobs",
                    str(jobs),
                ],
                core=1,
                stdout=-1,
            )
            out, _ = probe.communicate(timeout=window * 4 + 600)
            if probe.returncode != 0:
                raise RuntimeError(f"tracking variant {name} failed (exit {probe.returncode})")
            return dict(json.loads(out.decode().strip().splitlines()[-1]))
        finally:
            stop(server)


def run(jobs: int = 5000, window: float = 60.0) -> dict[str, Any]:
    watch = variant("watch", jobs, window)
    poll = variant("poll", jobs, window)
    return {
        "watch": watch,
        "poll_every_5s": poll,
        # Learning that the Jobs ended: the goal's figure.
        "cpu_ratio_poll_to_watch": round(
            poll["cpu_seconds_tracking"] / max(watch["cpu_seconds_tracking"], 0.01), 1
        ),
        # With reading every finished Job's pod and log (the same work on both sides) added.
        "cpu_ratio_with_outcomes": round(
            (poll["cpu_seconds_tracking"] + poll["cpu_seconds_outcomes"])
            / max(watch["cpu_seconds_tracking"] + watch["cpu_seconds_outcomes"], 0.01),
            1,
        ),
        "requests_ratio_poll_to_watch": round(
            poll["api_requests_per_job"] / max(watch["api_requests_per_job"], 0.01), 1
        ),
    }


runner.register(
    "tracking",
    (
        lambda: run(jobs=5000, window=60),
        lambda: run(jobs=20, window=1),
        lambda r: (
            r["cpu_ratio_poll_to_watch"] >= 10
            and r["watch"]["api_requests_per_job"] <= 3
            and r["watch"]["peak_rss_mb"] < 250
        ),
        "<= 3 API requests per job, >= 10x less CPU than polling to learn that Jobs ended, "
        "peak RSS < 250 MB for 5,000 Jobs",
    ),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=("watch", "poll"), required=True)
    parser.add_argument("--api", required=True)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run_variant(args.variant, args.api, args.kubeconfig, args.jobs))))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main()
