"""`make demo`: start `job-executor serve` on the embedded default (local backend, the samples/
resource tree, events printed on stdout), send it a sample event over HTTP, show what happens.

DEMO_PORT (default 8080) is the port it serves on; its state lives in a temporary folder that
is removed at the end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENT = ROOT / "samples" / "events" / "greeting.triggered.json"
PORT = int(os.environ.get("DEMO_PORT", "8080"))
URL = f"http://127.0.0.1:{PORT}/"


def port_busy(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    if port_busy(PORT):
        print(f"port {PORT} is in use: free it or run DEMO_PORT=<port> make demo", file=sys.stderr)
        return 1
    state = tempfile.mkdtemp(prefix="job-executor-demo-")
    # mkdtemp's folder is its owner's alone; run as root, serve runs tasks as `nobody`, who must
    # pass through it to reach its own work dir (listing it stays refused).
    os.chmod(state, 0o711)
    print(f"$ job-executor serve --port {PORT} --state-dir {state}", flush=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "executor", "serve", "--port", str(PORT), "--state-dir", state],
        cwd=ROOT,
    )
    try:
        for _ in range(100):
            if server.poll() is not None:  # it exited (a bad setting, say): no point waiting
                print(f"the service exited with status {server.returncode}", file=sys.stderr)
                return 1
            try:
                with urllib.request.urlopen(URL + "readyz", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            print("the service did not become ready", file=sys.stderr)
            return 1
        body = EVENT.read_bytes()
        print(f"\n$ POST {URL} < {EVENT.relative_to(ROOT)}  ({json.loads(body)['type']})", flush=True)
        request = urllib.request.Request(
            URL, data=body, headers={"Content-Type": "application/cloudevents+json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            print(f"{response.status} {response.read().decode()}", flush=True)
        print("\nThe service answers with started and finished events (one JSON line each):", flush=True)
        time.sleep(2)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
