"""The ingest ceiling: an aiohttp handler that only parses the binary-mode CloudEvent (with
the service's own binding, executor/sources/binding.py) and answers 202."""

from __future__ import annotations

import sys

from aiohttp import web

from executor.sources.binding import binary_event

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
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
