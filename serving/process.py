"""A `segserve` process started from Python: for tests, benchmarks and scripts.

`ServerProcess(model, *args)` starts `python -m serving MODEL --port PORT *args` on a free
port with its output in a log file; `wait_ready()` polls `/v2/health/ready`; `stop()` sends
SIGINT as Ctrl-C would and waits. `replica_pids()` finds the replica processes by their Ray
process titles.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPLICA_TITLE = b"ServeReplica:segkit:SegmentServer"
READY_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(self, model: str | Path, *args: str, log: Path, cwd: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model_url = f"{self.url}/v2/models/{Path(model).stem}"
        self.log = log
        command = [sys.executable, "-m", "serving", str(model), "--port", str(self.port), *args]
        self.process = subprocess.Popen(
            command, cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Return once the server answers ready; RuntimeError (with the log) otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"segserve exited with {self.process.returncode}:\n{self.log.read_text()}"
                )
            try:
                if json.loads(urlopen(f"{self.url}/v2/health/ready").read())["ready"]:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(1)
        raise RuntimeError(f"segserve not ready in {timeout} s:\n{self.log.read_text()}")

    def stop(self, timeout: float = 60) -> float:
        """SIGINT, then wait (kill after `timeout`); the seconds it took to stop."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return time.monotonic() - started

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def urlopen(url: str, data: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
    )
    return urllib.request.urlopen(request, timeout=120)


def post(url: str, data: bytes, headers: dict | None = None) -> tuple[int, bytes]:
    """(status, body) of a POST; an HTTP error status is returned, not raised."""
    try:
        with urlopen(url, data, headers) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def replica_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if REPLICA_TITLE in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids
