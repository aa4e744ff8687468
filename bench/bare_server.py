"""The ingest ceiling: an aiohttp handler that only parses the binary-mode CloudEvent (with
the service's own binding, executor/sources/binding.py) and answers 202. It runs on the event
loop `serve` runs on (uvloop with the `speedups` extra installed), so a ratio against it
compares the service's work, not two event loops; and with the garbage collector settled as
`serve` settles it (executor/support/collector.py), not two collectors."""

from __future__ import annotations

import sys

from aiohttp import web

from executor.sources.binding import binary_event
from executor.support import collector, speedups

MAX_ATTRIBUTE_BYTES = 4096  # the service's default


async def receive(request: web.Request) -> web.Response:
    body = await request.read()
    binary_event(request.headers, body, request.headers.get("Content-Type"), MAX_ATTRIBUTE_BYTES)
    return web.json_response({"accepted": 1}, status=202)


async def ready(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    app = web.Application()
    app.router.add_post("/", receive)
    app.router.add_get("/readyz", ready)
    factory = speedups.apply("auto")
    loop = factory() if factory is not None else None
    collector.settle()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
