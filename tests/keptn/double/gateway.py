"""Real nginx in front of the double, configured with the rules of Keptn's API gateway.

The configuration is ``nginx.conf.template`` (keptn/keptn
``installer/manifests/keptn/templates/api-gateway-nginx.yaml``). nginx runs in the foreground as
the current user with its pid, logs and temp dirs in a directory of its own, on a free loopback
port, and is stopped by its process id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf.template")


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    def __init__(self, directory: Path, upstreams: dict[str, int]) -> None:
        self.directory = directory
        self.upstreams = upstreams  # API_SERVICE, SHIPYARD, RESOURCE_SERVICE, DATASTORE -> port
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None

    def render(self, port: int) -> str:
        text = TEMPLATE.read_text()
        # As root the workers would drop to "nobody"; keep them as the current user.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        for key, value in {"USER": user, "DIR": str(self.directory), "PORT": str(port)}.items():
            text = text.replace(f"@{key}@", value)
        for name, upstream in self.upstreams.items():
            text = text.replace(f"@{name}@", str(upstream))
        assert "@" not in text.replace("@error4", ""), "unfilled placeholder in the nginx template"
        return text

    async def start(self) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # the free port can be taken between probing and binding
            port = _free_port()
            conf = self.directory / "nginx.conf"
            conf.write_text(self.render(port))
            self._process = await asyncio.create_subprocess_exec(
                binary,
                "-p",
                str(self.directory),
                "-c",
                str(conf),
                "-e",
                str(self.directory / "error.log"),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            if await self._listening(port):
                self.port = port
                return
            await self.stop()
        log = (self.directory / "error.log").read_text() if (self.directory / "error.log").exists() else ""
        raise RuntimeError(f"nginx did not start after 3 attempts: {log[-2000:]}")

    async def _listening(self, port: int) -> bool:
        for _ in range(100):  # up to 5 s
            if self._process is None or self._process.returncode is not None:
                return False
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()  # SIGTERM to the master (by pid): fast shutdown of its workers
        try:
            await asyncio.wait_for(process.wait(), timeout=5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
