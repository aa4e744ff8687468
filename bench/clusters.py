"""Clusters: short Jobs spread over three fake Kubernetes API servers (CLUSTERS_FILE, each with
`maxConcurrentJobs`), by the backend that places them (MultiClusterBackend).

Three runs, each against fresh fake API server processes (tests/kubeapi, one port each), each
Job completing by itself `job_seconds` after its creation:

1. one cluster holding the whole capacity (3 x max): the baseline measured side by side;
2. three clusters of `max` each: wall time against the ideal (total work / total capacity) and
   against the baseline, and each cluster's peak of Jobs not yet ended (the fake's own count);
3. the same, with one cluster's API server down for a while mid-run (/_fake/outage: it refuses
   connections, then comes back with its Jobs): no task lost (every one ends, succeeded) or run
   twice (every Job name created once, in one cluster only: the fakes' /_fake/job_arrivals).

Each task is submitted and waited on as the pipeline does; a Temporary error (the cluster of a
placed task is unreachable) is tried again after a pause, as the dispatcher would try its event
again: submit is idempotent (same cluster, 409, adopted).
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from bench import run as runner
from bench.common import free_port, python, spawn, stop, wait_http

NAMESPACE = "bench"
RETRY_SECONDS = 0.5


def _control(url: str, action: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/_fake/{action}", data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _spec(i: int) -> Any:
    from bench.local_spawn import kube_spec

    return replace(kube_spec(i), namespace=NAMESPACE, cmd=("true",))


async def _drive(
    clusters_file: Path, state: Path, jobs: int, outage: tuple[str, float] | None, ended_before: float
) -> dict[str, Any]:
    from executor.backends.kubernetes.backend import KubernetesBackend
    from executor.backends.kubernetes.clusterfile import ClusterSpec, read_clusters
    from executor.backends.kubernetes.clusters import MultiClusterBackend
    from executor.backends.kubernetes.render import RenderOptions
    from executor.model.errors import Temporary
    from executor.model.tasks import TaskOutcome, TaskSpec
    from executor.state import StateStore
    from executor.support.metrics import Metrics

    def member(spec: ClusterSpec) -> KubernetesBackend:
        return KubernetesBackend(
            RenderOptions(init_image="job-executor:bench"),
            (spec.namespace,),
            kubeconfig=spec.kubeconfig,
            context=spec.context,
        )

    # The outage's connection errors are the point of the run, not news: keep the output to figures.
    logging.getLogger("executor").setLevel(logging.ERROR)
    store = StateStore(state)
    backend = MultiClusterBackend(
        read_clusters(clusters_file, NAMESPACE), member, store, default_namespace=NAMESPACE, metrics=Metrics()
    )
    await backend.start()
    specs = [_spec(i) for i in range(jobs)]
    retries = 0
    done = 0
    half = asyncio.Event()

    async def one(spec: TaskSpec) -> TaskOutcome:
        nonlocal retries, done
        while True:
            try:
                handle = await backend.submit(spec, {})
                outcome = await backend.wait(handle, spec)
                done += 1
                if done >= jobs * ended_before:
                    half.set()
                return outcome
            except Temporary:
                retries += 1
                await asyncio.sleep(RETRY_SECONDS)

    async def cut() -> None:
        if outage is not None:
            await half.wait()
            _control(outage[0], "outage", {"seconds": outage[1]})

    began = time.monotonic()
    cutter = asyncio.create_task(cut())
    outcomes = await asyncio.gather(*(one(s) for s in specs))
    wall = time.monotonic() - began
    cutter.cancel()
    await backend.close()
    store.close()
    return {"wall": wall, "succeeded": sum(o.ok for o in outcomes), "retries": retries}


def _fleet(tmp: Path, limits: dict[str, int], job_seconds: float) -> tuple[list[Any], dict[str, str], Path]:
    procs, urls, entries = [], {}, []
    for name, limit in limits.items():
        port = free_port()
        kubeconfig = tmp / f"{name}.kubeconfig"
        procs.append(
            spawn(
                [
                    python(),
                    "-m",
                    "tests.kubeapi.server",
                    "--port",
                    str(port),
                    "--validation",
                    "off",
                    "--auto-complete-delay",
                    str(job_seconds),
                    "--kubeconfig",
                    str(kubeconfig),
                ],
                core=0,
            )
        )
        urls[name] = f"http://127.0.0.1:{port}"
        entries.append({"name": name, "kubeconfig": str(kubeconfig), "maxConcurrentJobs": limit})
    for url in urls.values():
        wait_http(url + "/version")
    clusters_file = tmp / "clusters.yaml"
    clusters_file.write_text(yaml.safe_dump({"clusters": entries}, sort_keys=False))
    return procs, urls, clusters_file


def variant(
    limits: dict[str, int], jobs: int, job_seconds: float, outage: float = 0.0, ended_before: float = 0.4
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        procs, urls, clusters_file = _fleet(Path(tmp), limits, job_seconds)
        try:
            down = (urls[list(urls)[-1]], outage) if outage else None
            driven = asyncio.run(_drive(clusters_file, Path(tmp) / "state.db", jobs, down, ended_before))
            arrivals = {name: set(_control(url, "job_arrivals")) for name, url in urls.items()}
            peaks = {name: int(_control(url, "stats")["peakActiveJobs"]) for name, url in urls.items()}
        finally:
            for proc in procs:
                stop(proc)
    created = sum(len(names) for names in arrivals.values())
    every = set().union(*arrivals.values())
    capacity = sum(limits.values())
    ideal = jobs * job_seconds / capacity
    return {
        "wall_seconds": round(driven["wall"], 2),
        "ideal_seconds": round(ideal, 2),
        "ratio_to_ideal": round(driven["wall"] / ideal, 3),
        "peak_jobs": peaks,
        "over_max": sum(max(0, peaks[n] - limits[n]) for n in limits),
        "jobs_per_cluster": {name: len(names) for name, names in arrivals.items()},
        "succeeded": driven["succeeded"],
        "lost": jobs - driven["succeeded"],
        "run_twice": created - len(every),  # a Job name created in two clusters
        "never_created": jobs - len(every),
        "retries": driven["retries"],
    }


def run(
    jobs: int = 1000, max_jobs: int = 20, job_seconds: float = 3.0, outage: float = 5.0
) -> dict[str, Any]:
    names = ("east", "west", "north")
    one = variant({"one": max_jobs * len(names)}, jobs, job_seconds)
    three = variant(dict.fromkeys(names, max_jobs), jobs, job_seconds)
    failover = variant(dict.fromkeys(names, max_jobs), jobs, job_seconds, outage=outage)
    return {
        "jobs": jobs,
        "job_seconds": job_seconds,
        "max_per_cluster": max_jobs,
        "one_cluster_baseline": one,
        "three_clusters": three,
        "ratio_to_one_cluster": round(three["wall_seconds"] / one["wall_seconds"], 3),
        "one_cluster_down_mid_run": {"outage_seconds": outage, **failover},
    }


def goal(r: dict[str, Any]) -> bool:
    three, failover = r["three_clusters"], r["one_cluster_down_mid_run"]
    return bool(
        three["ratio_to_ideal"] <= 1.15
        and three["over_max"] == 0
        and failover["over_max"] == 0
        and all(v[k] == 0 for v in (three, failover) for k in ("lost", "run_twice", "never_created"))
    )


runner.register(
    "clusters",
    (
        lambda: run(),
        lambda: run(jobs=60, max_jobs=5, job_seconds=0.3, outage=0.5),
        goal,
        "3 clusters x 20, 1,000 short Jobs: wall <= 1.15 x work / capacity, never above a cluster's "
        "max, none lost or run twice with one cluster down mid-run",
    ),
)
