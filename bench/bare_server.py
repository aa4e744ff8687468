"""The ingest ceiling: an aiohttp handler that only parses the binary-mode CloudEvent (with
the cloudevents package, as the service does) and answers 202."""

from __future__ import annotations

import sys

from aiohttp import web
from cloudevents.core.bindings.http import HTTPMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

FORMAT = JSONFormat()


async def receive(request: web.Request) -> web.Response:
    body = await request.read()
    headers = {k.lower(): v for k, v in request.headers.items()}
    from_binary(HTTPMessage(headers=headers, body=body), FORMAT, CloudEvent)
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
