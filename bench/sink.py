"""A receiver of the service's reports (structured-mode POSTs, as K_SINK): counts them by the
last part of their type (started, finished, ...); GET /counts answers the counts."""

from __future__ import annotations

import json
import sys
from collections import Counter

from aiohttp import web

COUNTS: Counter[str] = Counter()


async def receive(request: web.Request) -> web.Response:
    event = json.loads(await request.read())
    COUNTS[str(event.get("type", "")).rsplit(".", 1)[-1]] += 1
    return web.Response(status=202)


async def counts(_request: web.Request) -> web.Response:
    return web.json_response(dict(COUNTS))


def main() -> None:
    app = web.Application()
    app.router.add_post("/", receive)
    app.router.add_get("/counts", counts)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
