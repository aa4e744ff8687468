from __future__ import annotations

import aiohttp

from executor.model.errors import Permanent, Temporary
from executor.model.events import OutEvent
from executor.support import fastjson
from executor.support.urls import without_userinfo

CONTENT_TYPE = "application/cloudevents+json"


class HttpSink:
    """POSTs each event in structured content mode to a URL (K_SINK)."""

    name = "http"

    def __init__(self, url: str, token: str = "", timeout: float = 10.0) -> None:
        self.url = url
        self.where = without_userinfo(url)  # for messages: a URL may carry credentials
        self._headers = {"Content-Type": CONTENT_TYPE}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, event: OutEvent) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = fastjson.dumps(event)
        try:
            # Never follow a redirect: it would carry the Authorization header to its target.
            async with self._session.post(
                self.url, data=body, headers=self._headers, allow_redirects=False
            ) as response:
                if 300 <= response.status < 400:
                    location = without_userinfo(response.headers.get("Location", "")) or "nowhere"
                    raise Permanent(
                        f"{self.where} answered {response.status} redirecting to {location}; the event "
                        "(and its token) was not sent there: set K_SINK to the address that answers"
                    )
                if response.status >= 300:
                    text = (await response.text())[:200]
                    refused = 400 <= response.status < 500 and response.status not in (408, 425, 429)
                    raise (Permanent if refused else Temporary)(
                        f"{self.where} answered {response.status}: {text}"
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Temporary(f"{self.where}: {exc.__class__.__name__}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
