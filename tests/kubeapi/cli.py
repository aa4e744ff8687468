"""``python -m tests.kubeapi.server``: the fake API server as a process, for the benchmarks.

Prints its URL on the first line of stdout; SIGINT/SIGTERM stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from tests.kubeapi.access import CLUSTER_NAMESPACES
from tests.kubeapi.protocol import AutoComplete
from tests.kubeapi.server import FakeKubeAPI


def _delay(text: str) -> float | tuple[float, float]:
    low, _, high = text.partition(",")
    return (float(low), float(high)) if high else float(low)


def _outcome(text: str) -> Literal["succeeded", "failed"] | float:
    if text in ("succeeded", "failed"):
        return text  # type: ignore[return-value]
    return float(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.kubeapi.server",
        description="A fake Kubernetes API server (jobs, pods, logs, events, secrets) on loopback."
        " Prints its URL on the first line of stdout; SIGINT/SIGTERM stop it.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (default)")
    parser.add_argument(
        "--validation",
        choices=["full", "cached", "off"],
        default="cached",
        help="schema validation of created objects (default: cached, same schema, fast)",
    )
    parser.add_argument(
        "--auto-complete-delay",
        type=_delay,
        metavar="SECONDS[,MAX]",
        help="created Jobs finish by themselves after this delay (or a uniform random one in a range)",
    )
    parser.add_argument(
        "--auto-complete-outcome",
        type=_outcome,
        default="succeeded",
        metavar="succeeded|failed|P",
        help="how auto-completed Jobs end (P: probability of failure)",
    )
    parser.add_argument(
        "--auto-complete-log", default="", help="the log of auto-completed Jobs ({job}: the Job's name)"
    )
    parser.add_argument("--token", help="the all-allowed bearer token (default: fake-token)")
    parser.add_argument(
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NAME",
        help="a namespace that exists (repeatable; default: a fresh cluster's, bench, jobs, keptn)",
    )
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for the server here")
    parser.add_argument("--history-limit", type=int, default=100_000)
    parser.add_argument("--bookmark-interval", type=float, default=60.0)
    parser.add_argument("--seed", type=int)
    return parser


async def _serve(args: argparse.Namespace) -> None:
    auto = None
    if args.auto_complete_delay is not None:
        auto = AutoComplete(args.auto_complete_delay, args.auto_complete_outcome, args.auto_complete_log)
    api = FakeKubeAPI(
        host=args.host,
        port=args.port,
        validation=args.validation,
        auto_complete=auto,
        token=args.token,
        namespaces=(*CLUSTER_NAMESPACES, *(args.namespaces or ("bench", "jobs", "keptn"))),
        history_limit=args.history_limit,
        bookmark_interval=args.bookmark_interval,
        seed=args.seed,
    )
    await api.start()
    if args.kubeconfig:
        api.write_kubeconfig(args.kubeconfig)
    # As a process it is the benchmarks' instrument: keep what startup loaded out of the
    # collector's full passes, whose pauses would show up as latency that is not the service's.
    gc.collect()
    gc.freeze()
    print(api.url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # And what it stores as it runs (every Job, pod, event and the watch history): a full pass
    # over them grew to 140 ms every 2.4 s after 3,000 Jobs (bench/latency.py). The store holds
    # plain JSON trees, so freezing them leaks nothing the reference counts would not free.
    freezing = asyncio.create_task(_freeze_every(1.0))
    await stop.wait()
    freezing.cancel()
    await api.stop()


async def _freeze_every(seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        gc.freeze()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
