"""The run page at /ui/: static files (no build step) over the read API of sources/api.py.

The page holds no data of its own: it asks the API, with the receiver's bearer token when one is
set (asked once, kept in the tab's sessionStorage). It is served when a token guards the API or
the receiver listens on loopback only (UI=auto), always with UI=on, never with UI=off; when it is
not served, /ui/ says why and what to set.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"
# name -> content type: only these are served, so no request path reaches the file system.
FILES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
# Scripts and styles from this origin only (no inline code), no framing, no sniffing.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class RunPage:
    def __init__(self, mode: str, host: str, token: str) -> None:
        self.mode = mode
        self.host = host
        self.token = token

    @property
    def served(self) -> bool:
        if self.mode == "off":
            return False
        return self.mode == "on" or bool(self.token) or is_loopback(self.host)

    def why_not(self) -> str:
        if self.mode == "off":
            return "the run page is off (UI=off); set UI=auto or UI=on to serve it"
        return (
            f"the run page is off: the receiver listens on {self.host}, beyond loopback, and "
            "RCV_AUTH_TOKEN is not set, so anyone who reaches the port would see every run; set "
            "RCV_AUTH_TOKEN (the page asks for it), or UI=on to serve it without one"
        )

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/ui", self.redirect)
        router.add_get("/ui/", self.page)
        router.add_get("/ui/{name}", self.page)

    async def redirect(self, _request: web.Request) -> web.Response:
        raise web.HTTPPermanentRedirect("/ui/")

    async def page(self, request: web.Request) -> web.Response:
        if not self.served:
            return web.Response(status=404, text=self.why_not() + "\n", content_type="text/plain")
        name = request.match_info.get("name") or "index.html"
        kind = FILES.get(name)
        if kind is None:
            message = f"no file {name!r} on the run page\n"
            return web.Response(status=404, text=message, content_type="text/plain")
        body = (STATIC / name).read_bytes()
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=HEADERS)
